/**
 * Scale from zero and upstream outages (issue 18), against the project's list+watch API server: a
 * pool with `queue.noPods: wait` and no pod holds requests (the gateway stays ready, demand and
 * desired pods say work is waiting, so KEDA can scale 0 -> 1), and answers them 200 once the first
 * pod appears in the EndpointSlices; a request that outwaits maxWaitMs still gets QUEUE_TIMEOUT.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { validateConfig } from '../src/config.js';
import { KubernetesDiscovery } from '../src/discovery/kubernetes.js';
import { startRasaPod } from '../src/emulator/rasa-pod.js';
import { Gateway } from '../src/gateway.js';
import { FakeApiServer, podSlice } from './helpers/fake-apiserver.js';
import { get, metricValue, post, waitFor } from './helpers/harness.js';

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function gatewayOn(fake: FakeApiServer, maxWaitMs: number) {
  const config = validateConfig({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    pools: { rasa: { kubernetes: { namespace: 'rasa', service: 'rasa', port: 'http' }, affinity: 'rasa', queue: { noPods: 'wait', maxWaitMs } } },
  });
  const kubeConfig = fake.kubeConfig();
  const gateway = await Gateway.create(config, {
    discoveryFactory: async (pool) => new KubernetesDiscovery(kubeConfig, pool.kubernetes!, pool.name, { backoff: { initialMs: 50, maxMs: 300 } }),
    defaultMetrics: false,
  });
  cleanup.push(() => gateway.shutdown(0));
  return gateway.start();
}

test('an empty pool holds its requests until the first pod is ready, then answers them all 200', async () => {
  const fake = await FakeApiServer.start();
  cleanup.push(() => fake.close());
  const { publicUrl, adminUrl } = await gatewayOn(fake, 20_000);
  // Synced with no pod: ready all the same (a clear answer beats connection refused).
  await waitFor('readyz 200 with no pod', async () => (await fetch(`${adminUrl}/readyz`)).status === 200);

  const waiting = [
    post(`${publicUrl}/model/parse`, { text: 'first' }),
    post(`${publicUrl}/webhooks/rest/webhook`, { sender: 'early-bird', message: 'hi' }),
    post(`${publicUrl}/webhooks/rest/webhook`, { sender: 'early-bird', message: 'again' }),
  ];
  const scrapeOf = async () => (await get(`${adminUrl}/metrics`)).text;
  await waitFor('the requests wait in the queue', async () => (metricValue(await scrapeOf(), 'gateway_queue_length', { pool: 'rasa' }) ?? 0) >= 2);
  const scrape = await scrapeOf();
  assert.ok((metricValue(scrape, 'gateway_pool_desired_pods', { pool: 'rasa' }) ?? 0) >= 1, 'desired pods say a pod is needed');

  const pod = await startRasaPod({ name: 'rasa-0', slots: 2, serviceTimeMs: 5 });
  cleanup.push(() => pod.close());
  fake.apply(podSlice(pod));
  const answers = await Promise.all(waiting);
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 200, 200],
  );
  assert.equal(pod.trackers.get('early-bird')?.filter((e) => e.event === 'user').length, 2, 'both turns, in one place');
  const after = await scrapeOf();
  assert.equal(metricValue(after, 'gateway_requests_total', { pool: 'rasa', code: '503' }), undefined, 'no 503 at all');
});

test('an empty pool still gives up at maxWaitMs: 503 QUEUE_TIMEOUT, never NO_ENDPOINTS', async () => {
  const fake = await FakeApiServer.start();
  cleanup.push(() => fake.close());
  const { publicUrl, adminUrl } = await gatewayOn(fake, 300);
  await waitFor('readyz 200 with no pod', async () => (await fetch(`${adminUrl}/readyz`)).status === 200);
  const res = await post<{ error: { code: string } }>(`${publicUrl}/model/parse`, { text: 'nobody home' });
  assert.equal(res.status, 503);
  assert.equal(res.body.error.code, 'QUEUE_TIMEOUT');
});
