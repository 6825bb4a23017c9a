import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { signJwt, verifyJwt, callerVerified } from '../src/cache/rasa-auth.js';
import { get, Harness, metricValue, post, waitFor } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

const TOKEN = 's3cret';
const cached = (urls: string[], extra: Record<string, unknown> = {}) => ({
  pools: { nlu: { endpoints: urls, cache: { maxEntries: 100, ttlMs: 60_000, modelPollMs: 100 }, rasaAuth: { token: TOKEN }, ...extra } },
});

async function ready(adminUrl: string): Promise<void> {
  // The cache serves once every pod's model is known: wait for the first /status poll.
  await waitFor('models learned', async () => {
    const text = (await get(`${adminUrl}/metrics`)).text;
    return text.includes('gateway_cache_entries');
  });
}

const parse = (url: string, text: string, query = `?token=${TOKEN}`, headers: Record<string, string> = {}, extraBody: object = {}) =>
  post<{ text: string; intent: { name: string } }>(`${url}/model/parse${query}`, { text, ...extraBody }, { headers });

test('a repeated text is parsed by a pod once per model; message_id does not matter, the query does', async () => {
  const pods = await h.podSet(2, { name: 'cache', serviceTimeMs: 10, authToken: TOKEN });
  const gw = await h.gateway(cached(pods.map((p) => p.url)));
  await ready(gw.adminUrl);
  const first = await waitFor('a cacheable miss', async () => {
    const r = await parse(gw.publicUrl, 'hello there');
    return r.headers.get('x-gateway-cache') === 'miss' ? r : undefined;
  });
  assert.equal(first.status, 200);
  for (let i = 0; i < 5; i++) {
    const r = await parse(gw.publicUrl, 'hello there', `?token=${TOKEN}`, {}, { message_id: `m${i}` });
    assert.equal(r.headers.get('x-gateway-cache'), 'hit');
    assert.deepEqual(r.body, first.body);
  }
  const other = await parse(gw.publicUrl, 'hello there', `?token=${TOKEN}&emulation_mode=luis`);
  assert.equal(other.headers.get('x-gateway-cache'), 'miss', 'another emulation_mode is another answer');
  const parsesBefore = pods.reduce((n, p) => n + (p.counts.get('POST /model/parse') ?? 0), 0);
  await parse(gw.publicUrl, 'hello there');
  assert.equal(pods.reduce((n, p) => n + (p.counts.get('POST /model/parse') ?? 0), 0), parsesBefore);
  const noCache = await parse(gw.publicUrl, 'hello there', `?token=${TOKEN}`, { 'cache-control': 'no-cache' });
  assert.equal(noCache.headers.get('x-gateway-cache'), null, 'no-cache goes to a pod');
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.ok((metricValue(scrape, 'gateway_cache_requests_total', { pool: 'nlu', result: 'hit' }) ?? 0) >= 6);
  assert.equal(metricValue(scrape, 'gateway_cache_entries', { pool: 'nlu' }), 2);
});

test('a wrong or missing token never gets a cached answer', async () => {
  const pods = await h.podSet(1, { name: 'cache-auth', serviceTimeMs: 5, authToken: TOKEN });
  const gw = await h.gateway(cached(pods.map((p) => p.url)));
  await ready(gw.adminUrl);
  await waitFor('cached', async () => (await parse(gw.publicUrl, 'yes')).headers.get('x-gateway-cache') === 'hit');
  for (const query of ['', '?token=wrong', '?token=']) {
    const r = await parse(gw.publicUrl, 'yes', query);
    assert.equal(r.status, 401, `the pod decides for ${query || 'no token'}`);
    assert.equal(r.headers.get('x-gateway-cache'), null);
  }
  const bearer = await parse(gw.publicUrl, 'yes', '', { authorization: `Bearer ${await signJwt({ user: 'x' }, 'not-the-secret', 'HS256')}` });
  assert.equal(bearer.headers.get('x-gateway-cache'), null);
});

test('with two pods on different models nothing is served from the cache', async () => {
  const a = await h.pod({ name: 'model-a', serviceTimeMs: 5, authToken: TOKEN, modelId: 'm-1' });
  const b = await h.pod({ name: 'model-b', serviceTimeMs: 5, authToken: TOKEN, modelId: 'm-2' });
  const gw = await h.gateway(cached([a.url, b.url]));
  await ready(gw.adminUrl);
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < 6; i++) assert.equal((await parse(gw.publicUrl, 'same words')).headers.get('x-gateway-cache'), null);
  assert.equal((a.counts.get('POST /model/parse') ?? 0) + (b.counts.get('POST /model/parse') ?? 0), 6);
  // The rollout finishes: both on m-2. A new model never gets the old model's answer.
  a.modelId = 'm-2';
  await waitFor('cache active again', async () => (await parse(gw.publicUrl, 'same words')).headers.get('x-gateway-cache') === 'hit');
  const r = await parse(gw.publicUrl, 'same words');
  assert.equal((r.body as unknown as { model_id: string }).model_id, 'm-2');
});

test('N identical concurrent requests cause one upstream request, even if the first caller leaves', async () => {
  const pod = await h.pod({ name: 'coalesce', serviceTimeMs: 300, authToken: TOKEN });
  const gw = await h.gateway(cached([pod.url]));
  await ready(gw.adminUrl);
  await waitFor('model known', async () => (await parse(gw.publicUrl, 'warm-up')).headers.get('x-gateway-cache') !== null);
  const before = pod.counts.get('POST /model/parse') ?? 0;
  const leaver = new AbortController();
  const first = post(`${gw.publicUrl}/model/parse?token=${TOKEN}`, { text: 'menu' }, { signal: leaver.signal }).catch((e: Error) => e);
  await waitFor('the flight reached the pod', () => pod.running === 1);
  const rest = Array.from({ length: 9 }, () => parse(gw.publicUrl, 'menu'));
  leaver.abort();
  assert.ok((await first) instanceof Error);
  const results = await Promise.all(rest);
  assert.ok(results.every((r) => r.status === 200 && r.body.text === 'menu'));
  assert.ok(results.every((r) => r.headers.get('x-gateway-cache') === 'coalesced'));
  assert.equal((pod.counts.get('POST /model/parse') ?? 0) - before, 1, 'one upstream request for ten callers');
});

test('only 200 answers are cached', async () => {
  const pod = await h.pod({ name: 'cache-500', serviceTimeMs: 5, authToken: TOKEN });
  const gw = await h.gateway(cached([pod.url], { ejection: { consecutiveFailures: 0 } }));
  await ready(gw.adminUrl);
  await waitFor('model known', async () => (await parse(gw.publicUrl, 'warm')).headers.get('x-gateway-cache') !== null);
  pod.mode = 'error';
  assert.equal((await parse(gw.publicUrl, 'broken')).status, 500);
  pod.mode = 'ok';
  // While the pod answered 500 its /status may have failed too (the model unknown: the cache stands
  // aside); once the model is known again, the earlier 500 must not be served from the cache.
  let probe = 0;
  await waitFor('model known again', async () => (await parse(gw.publicUrl, `probe ${probe++}`)).headers.get('x-gateway-cache') !== null);
  const r = await parse(gw.publicUrl, 'broken');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-gateway-cache'), 'miss');
});

test('JWTs are verified as Rasa does: algorithm, signature, expiry', async () => {
  const secret = 'jwt-secret';
  const good = await signJwt({ user: { username: 'a', role: 'admin' } }, secret, 'HS256');
  assert.ok(await verifyJwt(good, secret, 'HS256'));
  assert.ok(!(await verifyJwt(good, 'other', 'HS256')));
  assert.ok(!(await verifyJwt(good, secret, 'HS512')), 'the configured algorithm only');
  assert.ok(!(await verifyJwt(await signJwt({ exp: 1 }, secret, 'HS256'), secret, 'HS256')), 'expired');
  assert.ok(!(await verifyJwt(await signJwt({ nbf: Math.floor(Date.now() / 1000) + 3600 }, secret, 'HS256'), secret, 'HS256')), 'not yet valid');
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`;
  assert.ok(!(await verifyJwt(none, secret, 'HS256')), 'alg none is refused');
  const auth = { jwtSecret: secret, jwtAlgorithm: 'HS256' as const };
  assert.ok(await callerVerified('/model/parse', `Bearer ${good}`, auth));
  assert.ok(!(await callerVerified('/model/parse', undefined, auth)));
  assert.ok(await callerVerified('/model/parse', undefined, { jwtAlgorithm: 'HS256' }), 'Rasa without auth: everyone may');
});

test('a JWT whose header is JSON null is refused, and the gateway keeps serving (once crashed the process)', async () => {
  const secret = 'jwt-secret';
  for (const jwt of ['bnVsbA.e30.x', 'e30.bnVsbA.x', 'bnVsbA.bnVsbA.bnVsbA', 'WzFd.WzFd.', 'a.b', '..', '']) {
    assert.equal(await verifyJwt(jwt, secret, 'HS256'), false, jwt);
  }
  const pod = await h.pod({ name: 'jwt-null', serviceTimeMs: 5, authToken: TOKEN });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [pod.url], cache: {}, rasaAuth: { token: TOKEN, jwtSecret: secret } } } });
  await ready(gw.adminUrl);
  const hostile = await parse(gw.publicUrl, 'hello', '', { authorization: 'Bearer bnVsbA.e30.x' });
  assert.equal(hostile.headers.get('x-gateway-cache'), null, 'an unverifiable caller bypasses the cache');
  assert.equal(hostile.status, 401, 'and the pod decides, as Rasa would');
  assert.equal((await parse(gw.publicUrl, 'hello')).status, 200, 'the gateway still serves');
});
