import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { debugPools, get, Harness, post, settled, waitFor } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

interface ErrorBody {
  error: { code: string; message: string };
}


test('queue overflow answers 503 QUEUE_FULL with Retry-After at once', async () => {
  const pod = await h.pod({ name: 'overflow', slots: 1, serviceTimeMs: 300 });
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1, queue: { maxLength: 2, maxWaitMs: 10_000 } } } });
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: `${i}` })));
  const full = results.filter((r) => r.status === 503);
  assert.equal(results.filter((r) => r.status === 200).length, 3, '1 in flight + 2 queued succeed');
  assert.equal(full.length, 3);
  for (const r of full) {
    assert.equal(r.body.error.code, 'QUEUE_FULL');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  }
  assert.equal(pod.handled, 3, 'rejected requests never reached the pod');
  await settled(gw.adminUrl);
});

test('a request that waits past maxWaitMs gets 503 QUEUE_TIMEOUT and never reaches a pod', async () => {
  const pod = await h.pod({ name: 'qtimeout', slots: 1, serviceTimeMs: 600 });
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1, queue: { maxLength: 10, maxWaitMs: 100 } } } });
  const [first, second] = await Promise.all([post(`${gw.publicUrl}/model/parse`, { text: 'a' }), post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'b' })]);
  assert.equal(first.status, 200);
  assert.equal(second.status, 503);
  assert.equal(second.body.error.code, 'QUEUE_TIMEOUT');
  assert.ok(second.headers.get('retry-after'));
  assert.equal(pod.handled, 1);
  await settled(gw.adminUrl);
});

test('a route deadline shorter than the queue wait gives 504 DEADLINE_EXCEEDED', async () => {
  const pod = await h.pod({ name: 'deadline', slots: 1, serviceTimeMs: 500 });
  const gw = await h.gateway({
    pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1 } },
    routes: [{ prefix: '/', pool: 'nlu', deadlineMs: 150 }],
  });
  const [first, second] = await Promise.all([post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'a' }), post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'b' })]);
  // The first reaches the pod and is cut at its deadline; the second dies in the queue.
  assert.equal(first.status, 504);
  assert.equal(first.body.error.code, 'DEADLINE_EXCEEDED');
  assert.equal(second.status, 504);
  assert.equal(second.body.error.code, 'DEADLINE_EXCEEDED');
  await settled(gw.adminUrl);
});

test('a client that disconnects while queued is removed and its request never reaches a pod', async () => {
  const pod = await h.pod({ name: 'abort', slots: 1, serviceTimeMs: 300 });
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1 } } });
  const first = post(`${gw.publicUrl}/model/parse`, { text: 'keeps the slot' });
  await waitFor('first request in flight', async () => (await debugPools(gw.adminUrl))[0]!.inflight === 1);
  const controller = new AbortController();
  const abandoned = post(`${gw.publicUrl}/model/parse`, { text: 'abandoned' }, { signal: controller.signal }).catch((e: Error) => e);
  await waitFor('second request queued', async () => (await debugPools(gw.adminUrl))[0]!.queueLength === 1);
  controller.abort();
  assert.ok((await abandoned) instanceof Error);
  await waitFor('queue empties after the abort', async () => (await debugPools(gw.adminUrl))[0]!.queueLength === 0);
  assert.equal((await first).status, 200);
  await settled(gw.adminUrl);
  assert.equal(pod.handled, 1);
  assert.equal(pod.counts.get('POST /model/parse'), 1, 'the abandoned request never reached the pod');
});

test('a pool without endpoints answers 503 NO_ENDPOINTS at once; the gateway itself stays ready', async () => {
  const gw = await h.gateway({ pools: { nlu: { endpoints: [] } } });
  const res = await post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'x' });
  assert.equal(res.status, 503);
  assert.equal(res.body.error.code, 'NO_ENDPOINTS');
  // Readiness is the gateway's (config, discovery synced, listeners), not whether a pool has pods.
  const ready = await get<{ status: string }>(`${gw.adminUrl}/readyz`);
  assert.equal(ready.status, 200);
});

test('an upstream that is down gives 502 UPSTREAM_UNAVAILABLE and releases the slot', async () => {
  const pod = await h.pod({ name: 'down' });
  const url = pod.url;
  await pod.close();
  const gw = await h.gateway({ pools: { nlu: { endpoints: [url], slotsPerEndpoint: 1 } } });
  const res = await post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'x' });
  assert.equal(res.status, 502);
  assert.equal(res.body.error.code, 'UPSTREAM_UNAVAILABLE');
  const again = await post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'x' });
  assert.equal(again.status, 502, 'the slot was released: the next request is not stuck in the queue');
  await settled(gw.adminUrl);
});

test('an upstream that hangs gives 504 UPSTREAM_TIMEOUT after upstreamTimeoutMs', async () => {
  const pod = await h.pod({ name: 'hang' });
  pod.mode = 'hang';
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1, upstreamTimeoutMs: 200 } } });
  const res = await post<ErrorBody>(`${gw.publicUrl}/model/parse`, { text: 'x' });
  assert.equal(res.status, 504);
  assert.equal(res.body.error.code, 'UPSTREAM_TIMEOUT');
  await settled(gw.adminUrl);
});

test('an upstream that resets mid-request gives 502 UPSTREAM_FAILED', async () => {
  const pod = await h.pod({ name: 'reset' });
  pod.mode = 'reset';
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1 } } });
  const res = await post<ErrorBody>(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'x', message: 'y' });
  assert.equal(res.status, 502);
  assert.equal(res.body.error.code, 'UPSTREAM_FAILED');
  await settled(gw.adminUrl);
});

test('an upstream 500 is passed through unchanged (the pod answered)', async () => {
  const pod = await h.pod({ name: 'five-hundred' });
  pod.mode = 'error';
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url] } } });
  const res = await post<{ reason: string }>(`${gw.publicUrl}/model/parse`, { text: 'x' });
  assert.equal(res.status, 500);
  assert.equal(res.body.reason, 'EmulatedError');
  await settled(gw.adminUrl);
});

test('a client that leaves while the pod works keeps the slot until the pod answers: no pile-up on a busy pod', async () => {
  const pod = await h.pod({ name: 'abandon', slots: 4, serviceTimeMs: 400 });
  const gw = await h.gateway({ pools: { nlu: { endpoints: [pod.url], slotsPerEndpoint: 1 } } });
  const impatient = new AbortController();
  const gone = post(`${gw.publicUrl}/model/parse`, { text: 'left' }, { signal: impatient.signal }).catch((e: Error) => e);
  await waitFor('the first request is at the pod', () => pod.running === 1);
  impatient.abort();
  assert.ok((await gone) instanceof Error);
  const next = post(`${gw.publicUrl}/model/parse`, { text: 'next' });
  await waitFor('the next request queues behind the still-busy slot', async () => (await debugPools(gw.adminUrl))[0]!.queueLength === 1);
  assert.equal(pod.running, 1, 'the pod never got a second request while it worked on the abandoned one');
  assert.equal((await next).status, 200);
  assert.equal(pod.maxRunning, 1);
  await settled(gw.adminUrl);
});
