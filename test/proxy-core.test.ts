import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { debugPools, get, Harness, metricValue, post, waitFor } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

test('proxies REST webhook and NLU parse to pods, forwarding headers and keeping x-request-id', async () => {
  const [a, b] = await h.podSet(2, { name: 'basic' });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [a!.url, b!.url], slotsPerEndpoint: 2 } } });
  const res = await post<{ recipient_id: string; text: string }[]>(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'alice', message: 'hello' }, { headers: { 'x-request-id': 'req-123' } });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, [{ recipient_id: 'alice', text: 'echo: hello' }]);
  assert.equal(res.headers.get('x-request-id'), 'req-123');
  assert.match(res.headers.get('x-rasa-pod') ?? '', /^basic-[01]$/);
  const parse = await post<{ intent: { name: string } }>(`${gw.publicUrl}/model/parse`, { text: 'hello there' });
  assert.equal(parse.status, 200);
  assert.equal(parse.body.intent.name, 'greet');
  const version = await get<{ version: string }>(`${gw.publicUrl}/version`);
  assert.equal(version.body.version, '3.6.21');
});

test('routes by exact path and longest prefix to different pools', async () => {
  const nlu = await h.pod({ name: 'nlu-only' });
  const dialog = await h.pod({ name: 'dialog-only' });
  const gw = await h.gateway({
    pools: { nlu: { endpoints: [nlu.url] }, dialog: { endpoints: [dialog.url] } },
    routes: [
      { path: '/model/parse', pool: 'nlu' },
      { prefix: '/', pool: 'dialog' },
    ],
  });
  const parse = await post(`${gw.publicUrl}/model/parse`, { text: 'hi' });
  assert.equal(parse.headers.get('x-rasa-pod'), 'nlu-only');
  const hook = await post(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 's', message: 'm' });
  assert.equal(hook.headers.get('x-rasa-pod'), 'dialog-only');
});

test('an unrouted path gets a JSON 404 from the gateway and a wrong method a 405', async () => {
  const pod = await h.pod({ name: 'route-404' });
  const gw = await h.gateway({
    pools: { nlu: { endpoints: [pod.url] } },
    routes: [{ path: '/model/parse', pool: 'nlu', methods: ['POST'] }],
  });
  const missing = await get<{ error: { code: string } }>(`${gw.publicUrl}/nothing/here`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'NO_ROUTE');
  const wrong = await get<{ error: { code: string } }>(`${gw.publicUrl}/model/parse`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.body.error.code, 'METHOD_NOT_ALLOWED');
  assert.equal(pod.handled, 0);
});

test('slots cap what each pod runs; the rest wait centrally and every request completes', async () => {
  const pods = await h.podSet(3, { name: 'slots', slots: 4, serviceTimeMs: 40 });
  const gw = await h.gateway({ pools: { rasa: { endpoints: pods.map((p) => p.url), slotsPerEndpoint: 2 } } });
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => post(`${gw.publicUrl}/model/parse`, { text: `t${i}` })));
  assert.ok(results.every((r) => r.status === 200));
  for (const pod of pods) assert.ok(pod.maxRunning <= 2, `${pod.name} ran ${pod.maxRunning} at once with 2 slots`);
  assert.equal(pods.reduce((n, p) => n + p.handled, 0), 30);
  const view = await debugPools(gw.adminUrl);
  assert.equal(view[0]!.inflight, 0);
  assert.equal(view[0]!.queueLength, 0);
});

test('a freed slot goes to the queue head: a slow pod never holds a queue of its own', async () => {
  const fast = await h.pod({ name: 'fast', slots: 1, serviceTimeMs: 20 });
  const slow = await h.pod({ name: 'slow', slots: 1, serviceTimeMs: 400 });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [fast.url, slow.url], slotsPerEndpoint: 1 } } });
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => post(`${gw.publicUrl}/model/parse`, { text: `t${i}` })));
  assert.ok(results.every((r) => r.status === 200));
  // The slow pod can take at most a couple while the fast one drains the queue; round-robin would give it 6.
  assert.ok(slow.handled <= 2, `slow pod handled ${slow.handled}`);
  assert.equal(slow.queued, 0);
});

test('/metrics exposes the contract names with values that match the traffic', async () => {
  const pods = await h.podSet(2, { name: 'metrics', slots: 2, serviceTimeMs: 30 });
  const gw = await h.gateway({ pools: { nlu: { endpoints: pods.map((p) => p.url), slotsPerEndpoint: 1 } } });
  const inflight = Array.from({ length: 6 }, () => post(`${gw.publicUrl}/model/parse`, { text: 'x' }));
  const during = await waitFor('queued requests in the metrics', async () => {
    const text = (await get(`${gw.adminUrl}/metrics`)).text;
    return (metricValue(text, 'gateway_queue_length', { pool: 'nlu' }) ?? 0) > 0 ? text : undefined;
  });
  assert.equal(metricValue(during, 'gateway_inflight_requests', { pool: 'nlu' }), 2);
  for (const p of pods) assert.equal(metricValue(during, 'gateway_endpoint_inflight_requests', { pool: 'nlu', endpoint: p.url }), 1);
  await Promise.all(inflight);
  const text = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(text, 'gateway_requests_total', { pool: 'nlu', code: '200' }), 6);
  assert.equal(metricValue(text, 'gateway_request_duration_seconds_count', { pool: 'nlu' }), 6);
  assert.equal(metricValue(text, 'gateway_queue_wait_seconds_count', { pool: 'nlu' }), 6);
  assert.equal(metricValue(text, 'gateway_queue_length', { pool: 'nlu' }), 0);
  assert.equal(metricValue(text, 'gateway_inflight_requests', { pool: 'nlu' }), 0);
  assert.equal(metricValue(text, 'gateway_endpoints', { pool: 'nlu', state: 'ready' }), 2);
  assert.equal(metricValue(text, 'gateway_endpoint_slots', { pool: 'nlu', endpoint: pods[0]!.url }), 1);
  assert.match(text, /# TYPE gateway_rejected_requests_total counter/);
});

test('per-endpoint series disappear when the endpoint leaves the pool', async () => {
  const [a, b] = await h.podSet(2, { name: 'series' });
  const gw = await h.gateway({ pools: { nlu: { endpoints: [a!.url, b!.url] } } });
  const pool = gw.gateway.pools.get('nlu')!.pool;
  pool.update([{ key: a!.url, origin: a!.url, ready: true, serving: true, terminating: false }]);
  const text = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(text, 'gateway_endpoint_inflight_requests', { endpoint: b!.url }), undefined);
  assert.equal(metricValue(text, 'gateway_endpoint_inflight_requests', { endpoint: a!.url }), 0);
});
