import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { connect } from 'node:net';
import { debugPools, get, Harness, metricValue, post, settled, waitFor } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

interface ErrorBody {
  error: { code: string; message: string };
}


test('a pod killed mid-burst: idempotent requests are retried elsewhere, others get 2xx or a clear 502', async () => {
  const pods = await h.podSet(3, { name: 'kill', slots: 2, serviceTimeMs: 150 });
  const gw = await h.gateway({
    pools: { rasa: { endpoints: pods.map((p) => p.url), slotsPerEndpoint: 2, retry: { budgetPercent: 100, minPerSecond: 100 } } },
  });
  const parses = Array.from({ length: 18 }, (_, i) => post(`${gw.publicUrl}/model/parse`, { text: `p${i}` }));
  const hooks = Array.from({ length: 12 }, (_, i) => post<ErrorBody>(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: `u${i}`, message: 'hi' }));
  await waitFor('the burst is in flight on every pod', () => pods.every((p) => p.running > 0));
  await pods[0]!.close();
  const parsed = await Promise.all(parses);
  assert.deepEqual(parsed.filter((r) => r.status !== 200).map((r) => r.text), [], 'every idempotent request succeeded');
  for (const r of await Promise.all(hooks)) {
    if (r.status !== 200) {
      assert.equal(r.status, 502);
      assert.match(r.body.error.code, /^UPSTREAM_(FAILED|UNAVAILABLE)$/);
    }
  }
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.ok((metricValue(scrape, 'gateway_retries_total', { pool: 'rasa' }) ?? 0) > 0, 'retries were counted');
  await settled(gw.adminUrl);
});

test("a webhook is retried only when the connection was refused; a pod's 5xx on it is passed through", async () => {
  const live = await h.pod({ name: 'refuse-live', serviceTimeMs: 5 });
  const dead = await h.pod({ name: 'refuse-dead' });
  const deadUrl = dead.url;
  await dead.close();
  const gw = await h.gateway({
    pools: { rasa: { endpoints: [deadUrl, live.url], slotsPerEndpoint: 4, balancer: 'round-robin', ejection: { consecutiveFailures: 0 }, retry: { budgetPercent: 100, minPerSecond: 100 } } },
  });
  for (let i = 0; i < 6; i++) {
    const res = await post(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: `s${i}`, message: 'hi' });
    assert.equal(res.status, 200, 'refused: nothing was sent, so even a webhook may go elsewhere');
    assert.equal(res.headers.get('x-rasa-pod'), 'refuse-live');
  }
  live.mode = 'error';
  const five = await post(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'x', message: 'hi' });
  assert.equal(five.status, 500, 'a pod answer on a non-idempotent route is never retried');
});

test('a 500-returning pod is ejected, its work goes elsewhere, and it returns when healthy', async () => {
  const good = await h.pod({ name: 'eject-good', slots: 4, serviceTimeMs: 5 });
  const bad = await h.pod({ name: 'eject-bad', slots: 4, serviceTimeMs: 5 });
  bad.mode = 'error';
  const gw = await h.gateway({
    pools: { rasa: { endpoints: [good.url, bad.url], balancer: 'round-robin', slotsPerEndpoint: 4, ejection: { consecutiveFailures: 3, baseMs: 300 } } },
  });
  for (let i = 0; i < 12; i++) await post(`${gw.publicUrl}/model/parse`, { text: 'x' });
  const view = await debugPools(gw.adminUrl);
  assert.equal(view[0]!.endpoints.find((e) => e.url === bad.url)!.state, 'ejected');
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_ejections_total', { pool: 'rasa', reason: 'passive' }), 1);
  assert.equal(metricValue(scrape, 'gateway_endpoints', { pool: 'rasa', state: 'ejected' }), 1);
  const handledBefore = bad.handled;
  for (let i = 0; i < 6; i++) assert.equal((await post(`${gw.publicUrl}/model/parse`, { text: 'x' })).status, 200);
  assert.equal(bad.handled, handledBefore, 'an ejected pod takes no new work');
  bad.mode = 'ok';
  await waitFor('the pod returns after its ejection interval', async () => (await debugPools(gw.adminUrl))[0]!.endpoints.find((e) => e.url === bad.url)!.state === 'ready');
  await waitFor('it serves again', async () => {
    await post(`${gw.publicUrl}/model/parse`, { text: 'x' });
    return bad.handled > handledBefore;
  });
});

test('a retried request that runs into its deadline is answered and counted once (the first attempt\'s timer ends with it)', async () => {
  const hung = await h.pod({ name: 'retry-hang', slots: 4 });
  hung.mode = 'hang';
  const dead = await h.pod({ name: 'retry-dead' });
  const deadUrl = dead.url;
  await dead.close();
  const gw = await h.gateway({
    // Round-robin starts at the refused pod: every request is retried onto the hanging one.
    pools: { rasa: { endpoints: [deadUrl, hung.url], balancer: 'round-robin', slotsPerEndpoint: 4, ejection: { consecutiveFailures: 0 }, retry: { budgetPercent: 100, minPerSecond: 100 } } },
    routes: [{ prefix: '/', pool: 'rasa', deadlineMs: 300 }],
  });
  const results = await Promise.all(Array.from({ length: 4 }, (_, i) => post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: `d${i}` })));
  for (const r of results) assert.equal(r.body.error.code, 'DEADLINE_EXCEEDED', r.text);
  await settled(gw.adminUrl);
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  const retried = metricValue(scrape, 'gateway_retries_total', { pool: 'rasa', reason: 'refused' }) ?? 0;
  assert.ok(retried >= 2, `attempts retried after a refusal: ${retried}`);
  // One answer per request; a first attempt's timer left running fired a second DEADLINE_EXCEEDED.
  assert.equal(metricValue(scrape, 'gateway_upstream_failures_total', { pool: 'rasa', reason: 'DEADLINE_EXCEEDED' }), 4);
  assert.equal(metricValue(scrape, 'gateway_requests_total', { pool: 'rasa', code: '504' }), 4);
  assert.equal(metricValue(scrape, 'gateway_internal_errors_total', { pool: 'rasa', stage: 'proxy' }), undefined);
});

test('a hanging pod costs each request at most its deadline and is ejected', async () => {
  const good = await h.pod({ name: 'hang-good', slots: 4, serviceTimeMs: 5 });
  const hung = await h.pod({ name: 'hang-bad', slots: 4 });
  hung.mode = 'hang';
  const gw = await h.gateway({
    pools: { rasa: { endpoints: [good.url, hung.url], balancer: 'round-robin', slotsPerEndpoint: 4, ejection: { consecutiveFailures: 2, baseMs: 60_000 }, retry: { budgetPercent: 0, minPerSecond: 0 } } },
    routes: [{ prefix: '/', pool: 'rasa', deadlineMs: 200 }],
  });
  const results = await Promise.all(Array.from({ length: 8 }, () => post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'x' })));
  for (const r of results) assert.ok(r.status === 200 || (r.status === 504 && r.body.error.code === 'DEADLINE_EXCEEDED'), r.text);
  await waitFor('the hanging pod is ejected', async () => (await debugPools(gw.adminUrl))[0]!.endpoints.find((e) => e.url === hung.url)!.state === 'ejected');
  for (let i = 0; i < 4; i++) assert.equal((await post(`${gw.publicUrl}/model/parse`, { text: 'x' })).status, 200);
  await settled(gw.adminUrl);
  // These requests reached a pod: upstream failures, not rejections "without reaching a pod".
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.ok((metricValue(scrape, 'gateway_upstream_failures_total', { pool: 'rasa', reason: 'DEADLINE_EXCEEDED' }) ?? 0) >= 1);
  assert.equal(metricValue(scrape, 'gateway_rejected_requests_total', { pool: 'rasa', reason: 'DEADLINE_EXCEEDED' }), undefined);
});

test('active health checks take a failing pod out and put it back', async () => {
  const a = await h.pod({ name: 'probe-a' });
  const b = await h.pod({ name: 'probe-b' });
  const gw = await h.gateway({
    pools: { rasa: { endpoints: [a.url, b.url], healthCheck: { intervalMs: 100, timeoutMs: 200, unhealthyThreshold: 2, healthyThreshold: 1 } } },
  });
  b.mode = 'error';
  await waitFor('b ejected by its probe', async () => (await debugPools(gw.adminUrl))[0]!.endpoints.find((e) => e.url === b.url)!.state === 'ejected');
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_ejections_total', { pool: 'rasa', reason: 'health' }), 1);
  b.mode = 'ok';
  await waitFor('b back after a passing probe', async () => (await debugPools(gw.adminUrl))[0]!.endpoints.find((e) => e.url === b.url)!.state === 'ready');
});

test('a pod that joins a running pool starts with one slot and ramps up', async () => {
  const first = await h.pod({ name: 'ramp-old', slots: 8, serviceTimeMs: 5 });
  const late = await h.pod({ name: 'ramp-new', slots: 8, serviceTimeMs: 5 });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [first.url], slotsPerEndpoint: 4, slowStartMs: 60_000 } } });
  const pool = gw.gateway.pools.get('rasa')!.pool;
  pool.update([first.url, late.url].map((u) => ({ key: u, origin: u, ready: true, serving: true, terminating: false })));
  const view = await debugPools(gw.adminUrl);
  assert.equal(view[0]!.endpoints.find((e) => e.url === first.url)!.slots, 4, 'pods present at start skip the ramp');
  assert.equal(view[0]!.endpoints.find((e) => e.url === late.url)!.slots, 1, 'a joining pod starts at one slot');
  // Same latency as its peer: the ramp ends early.
  await waitFor('the ramp ends once its latency matches its peers', async () => {
    await Promise.all(Array.from({ length: 6 }, () => post(`${gw.publicUrl}/model/parse`, { text: 'x' })));
    return (await debugPools(gw.adminUrl))[0]!.endpoints.find((e) => e.url === late.url)!.slots === 4;
  });
});

test('Rasa routes that change or reveal state are refused on the public listener by default', async () => {
  const pod = await h.pod({ name: 'protect' });
  const gw = await h.gateway({ internal: { host: '127.0.0.1', port: 0 }, pools: { rasa: { endpoints: [pod.url] } } });
  for (const [method, path] of [
    ['PUT', '/model'],
    ['DELETE', '/model'],
    ['POST', '/model/train'],
    ['POST', '/model/test/intents'],
    ['GET', '/conversations/alice/tracker'],
    ['POST', '/conversations/alice/messages'],
    ['GET', '/status'],
    ['GET', '/domain'],
  ]) {
    const res = await fetch(`${gw.publicUrl}${path}`, { method, headers: { 'content-type': 'application/json', authorization: 'Bearer x' }, ...(method === 'GET' ? {} : { body: '{}' }) });
    assert.equal(res.status, 403, `${method} ${path}`);
    assert.equal(((await res.json()) as ErrorBody).error.code, 'FORBIDDEN_ROUTE');
  }
  assert.equal(pod.counts.size, 0, 'none reached the pod');
  assert.equal((await post(`${gw.publicUrl}/model/parse`, { text: 'hi' })).status, 200, '/model/parse stays public');
});

test('the internal listener serves protected routes, and publicRoutes opens chosen ones', async () => {
  const pod = await h.pod({ name: 'internal' });
  const gw = await h.gateway({ internal: { host: '127.0.0.1', port: 0 }, publicRoutes: ['/status'], pools: { rasa: { endpoints: [pod.url] } } });
  const internal = `http://127.0.0.1:${(gw.gateway.internal!.server.address() as { port: number }).port}`;
  assert.equal((await get(`${internal}/conversations/alice/tracker`)).status, 200);
  assert.equal((await get(`${gw.publicUrl}/status`)).status, 200, 'allowed by publicRoutes');
  assert.equal((await get(`${gw.publicUrl}/domain`)).status, 403);
});

test('PUT /model on the internal listener goes to every pod and reports each answer', async () => {
  const pods = await h.podSet(3, { name: 'fanout' });
  const gw = await h.gateway({ internal: { host: '127.0.0.1', port: 0 }, pools: { rasa: { endpoints: pods.map((p) => p.url) } } });
  const internal = `http://127.0.0.1:${(gw.gateway.internal!.server.address() as { port: number }).port}`;
  const res = await fetch(`${internal}/model?token=secret`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model_file: 'models/new.tar.gz' }) });
  const body = (await res.json()) as { ok: boolean; results: { pod: string; status: number }[] };
  // The emulator has no PUT /model: every pod answers 404, and the gateway reports each one.
  assert.equal(res.status, 502);
  assert.equal(body.ok, false);
  assert.equal(body.results.length, 3);
  assert.deepEqual(body.results.map((r) => r.status), [404, 404, 404]);
  for (const p of pods) assert.equal(p.counts.get('PUT /model'), 1);
});

test('bad input gets the right 4xx, never reaches a pod and leaks no slot', async () => {
  const pod = await h.pod({ name: 'badinput', slots: 2 });
  const gw = await h.gateway({
    limits: { headersTimeoutMs: 300, requestTimeoutMs: 600, maxHeaderBytes: 4096 },
    pools: { rasa: { endpoints: [pod.url], bodyLimitBytes: 2048, affinity: 'rasa' } },
  });
  const big = await post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'x'.repeat(5000) });
  assert.equal(big.status, 413);
  assert.equal(big.body.error.code, 'BODY_TOO_LARGE');
  const bigWebhook = await post<ErrorBody>(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'a', message: 'x'.repeat(5000) });
  assert.equal(bigWebhook.status, 413);
  const hugeHeader = await fetch(`${gw.publicUrl}/version`, { headers: { 'x-big': 'y'.repeat(8000) } });
  assert.equal(hugeHeader.status, 431);
  const port = Number(new URL(gw.publicUrl).port);
  const raw = (payload: string, waitMs = 1500) =>
    new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
      socket.write(payload);
      setTimeout(() => socket.destroy(), waitMs);
    });
  assert.match(await raw('BREW /model/parse HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await raw('GET model/parse HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await raw('GET /version HTTP/1.1\r\nHost: x\r\n'), /^HTTP\/1\.1 408/, 'slow headers');
  assert.match(
    await raw('POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sender":'),
    /^HTTP\/1\.1 408/,
    'slow body',
  );
  assert.equal(pod.counts.size, 0, 'nothing reached the pod');
  await settled(gw.adminUrl);
  assert.equal((await post(`${gw.publicUrl}/model/parse`, { text: 'fine' })).status, 200);
});
