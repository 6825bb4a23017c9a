/**
 * A Rasa pod that fails its readiness probe under load (it is busy, not dying) flaps between ready
 * and not ready while its requests still run. The pool must keep it, and its in-flight count, through
 * every flap: once it was dropped and re-added as a new pod with nothing in flight, and a 2-slot pod
 * ran 4 requests at once. Driven through the real list+watch protocol (the project's API server) with
 * emulated pods that record their peak concurrency.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../src/config.js';
import { KubernetesDiscovery } from '../src/discovery/kubernetes.js';
import { startRasaPod, type RasaPod } from '../src/emulator/rasa-pod.js';
import { Gateway } from '../src/gateway.js';
import { FakeApiServer, makeSlice, type SliceEndpointSpec } from './helpers/fake-apiserver.js';
import { debugPools, post, settled, waitFor } from './helpers/harness.js';
import { captureLogger } from './helpers/log-capture.js';
import { admissionFor, endpoint, RecordingTicket } from './helpers/tickets.js';

const SLOTS = 2;

test('a pod whose readiness flaps under load never runs more than its slots and keeps what was learned of it', async () => {
  const fake = await FakeApiServer.start();
  const pods: RasaPod[] = [];
  let gateway: Gateway | undefined;
  try {
    // The pods could run 8 at once: only the gateway's accounting keeps them at 2.
    for (const name of ['flap-0', 'flap-1']) pods.push(await startRasaPod({ name, slots: 8, serviceTimeMs: 250 }));
    const slice = (pod: RasaPod, ready: boolean) =>
      makeSlice({
        name: `slice-${pod.name}`,
        service: 'rasa',
        ports: [{ name: 'http', port: Number(new URL(pod.url).port), protocol: 'TCP' }],
        endpoints: [{ ip: '127.0.0.1', pod: pod.name, ready, serving: ready, terminating: false } satisfies SliceEndpointSpec],
      });
    for (const pod of pods) fake.apply(slice(pod, true));
    const kubeConfig = fake.kubeConfig();
    const log = captureLogger();
    const config = validateConfig({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'silent' },
      pools: { rasa: { kubernetes: { namespace: 'rasa', service: 'rasa', port: 'http' }, slotsPerEndpoint: SLOTS, slowStartMs: 0, queue: { maxLength: 100, maxWaitMs: 30_000 } } },
    });
    gateway = await Gateway.create(config, {
      discoveryFactory: async (pool) => new KubernetesDiscovery(kubeConfig, pool.kubernetes!, pool.name, { logger: log.logger }),
      defaultMetrics: false,
    });
    const { publicUrl, adminUrl } = await gateway.start();
    await waitFor('both pods ready', async () => (await debugPools(adminUrl))[0]?.endpoints.filter((e) => e.state === 'ready').length === 2);
    const backend = () => [...gateway!.pools.get('rasa')!.pool.backends].find((b) => b.pod === 'flap-0');
    const before = backend();
    assert.ok(before);

    const [flapping] = pods as [RasaPod, RasaPod];
    const answers = Array.from({ length: 24 }, (_, i) => post(`${publicUrl}/model/parse`, { text: `t${i}` }));
    for (let flap = 0; flap < 3; flap++) {
      await waitFor('the flapping pod is busy', () => flapping.running > 0);
      fake.apply(slice(flapping, false));
      await waitFor('not-ready in /debug/pools', async () => (await debugPools(adminUrl))[0]?.endpoints.some((e) => e.pod === 'flap-0' && e.state === 'not-ready'));
      fake.apply(slice(flapping, true));
      await waitFor('ready again', async () => (await debugPools(adminUrl))[0]?.endpoints.some((e) => e.pod === 'flap-0' && e.state === 'ready'));
    }
    const results = await Promise.all(answers);
    assert.ok(results.every((r) => r.status === 200), results.map((r) => r.status).join(' '));
    for (const pod of pods) assert.ok(pod.maxRunning <= SLOTS, `${pod.name} ran ${pod.maxRunning} at once with ${SLOTS} slots`);
    assert.equal(backend(), before, 'the same pod, with its accounting and learned latency, not a new one');
    assert.ok(before.latency.hasSamples);
    await settled(adminUrl);
  } finally {
    await gateway?.shutdown(0);
    for (const p of pods) await p.close();
    await fake.close();
  }
});

test('pool: a pod that goes not ready, or leaves the slices, keeps its in-flight slots counted until they end', () => {
  let now = 0;
  const pool = admissionFor({ name: 'p', balancer: 'least-outstanding', slotsPerEndpoint: 2, queue: { maxLength: 10, maxWaitMs: 1000 }, now: () => now });
  const removed: string[] = [];
  pool.pool.listen({ backendRemoved: (b) => removed.push(b.pod) });
  pool.pool.update([endpoint(1)]);
  const pod = pool.pool.get(endpoint(1).key)!;
  const running = [new RecordingTicket(), new RecordingTicket()];
  for (const t of running) pool.admit(t);
  assert.equal(pod.inflight, 2);

  // Not ready: kept, takes nothing new; back to ready: still full, so a new request waits.
  pool.pool.update([endpoint(1, { ready: false, serving: false })]);
  assert.equal(pool.pool.get(endpoint(1).key), pod);
  assert.equal(pod.state, 'not-ready');
  pool.pool.update([endpoint(1)]);
  const waiting = new RecordingTicket();
  pool.admit(waiting);
  assert.equal(waiting.granted, undefined, 'a 2-slot pod with 2 in flight takes no third');

  // Gone from the slices and back before its requests ended: the same pod, the same count.
  pool.pool.update([]);
  assert.equal(pool.pool.get(endpoint(1).key), undefined);
  assert.equal(waiting.error?.code, 'NO_ENDPOINTS', 'with no pod taking work, waiters are told at once');
  assert.deepEqual(removed, [], 'not forgotten while its requests run');
  pool.pool.update([endpoint(1)]);
  assert.equal(pool.pool.get(endpoint(1).key), pod);
  assert.equal(pod.inflight, 2);
  const next = new RecordingTicket();
  pool.admit(next);
  assert.equal(next.granted, undefined, 'still full after its return');
  now += 10;
  pool.release(running[0]!, 'ok', 10);
  assert.equal(next.granted, pod, 'the freed slot goes to the waiter');
  assert.equal(pod.inflight, 2);

  // Gone for good: forgotten once its last request ends, and only then.
  pool.pool.update([]);
  pool.release(running[1]!, 'ok', 10);
  assert.deepEqual(removed, []);
  pool.release(next, 'ok', 10);
  assert.deepEqual(removed, ['rasa-1']);
  assert.equal(pool.pool.inflight, 0);
});
