/**
 * Pod deletion cost (src/scale-in/deletion-cost.ts) against the loopback API server
 * (test/helpers/fake-apiserver.ts, which now also serves pod PATCH and coordination.k8s.io Leases):
 * the annotation follows each pod's live conversations through a real gateway; one writer at a time
 * chosen by a Lease, handed over on release and after expiry; unchanged pods are not patched again;
 * API errors are survived. No timing assertions: conditions are polled with generous timeouts.
 */
import { test } from 'node:test';
import { admissionFor } from './helpers/tickets.js';
import assert from 'node:assert/strict';
import { ConfigError, validateConfig, type DeletionCostConfig } from '../src/config.js';
import type { Pool } from '../src/pool/pool.js';
import { DeletionCostWriter, POD_DELETION_COST } from '../src/scale-in/deletion-cost.js';
import { KubernetesDiscovery } from '../src/discovery/kubernetes.js';
import type { EndpointInfo } from '../src/discovery/types.js';
import { startRasaPod, type RasaPod } from '../src/emulator/rasa-pod.js';
import { Gateway } from '../src/gateway.js';
import { captureLogger } from './helpers/log-capture.js';
import { waitFor } from './helpers/harness.js';
import { FakeApiServer, makeSlice } from './helpers/fake-apiserver.js';




const deletionCost = (overrides: Partial<DeletionCostConfig> = {}): DeletionCostConfig => ({
  enabled: true,
  intervalMs: 100,
  leaseName: 'rasa-gateway-deletion-cost',
  leaseDurationSeconds: 1,
  minChange: 1,
  ...overrides,
});

/** The annotations of `pods` as numbers (undefined where not written). */
function costs(fake: FakeApiServer, pods: readonly string[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const p of pods) {
    const v = fake.deletionCost(p);
    out[p] = v === undefined ? undefined : Number(v);
  }
  return out;
}

function sameCosts(actual: Record<string, number | undefined>, expected: Record<string, number>): boolean {
  return Object.entries(expected).every(([pod, cost]) => actual[pod] === cost);
}

/** Three emulated Rasa pods behind one Service, each with its EndpointSlice and its Pod object. */
async function cluster(fake: FakeApiServer, serviceTimeMs: () => number = () => 2): Promise<RasaPod[]> {
  const pods: RasaPod[] = [];
  for (const name of ['rasa-0', 'rasa-1', 'rasa-2']) {
    const pod = await startRasaPod({ name, slots: 8, serviceTimeMs });
    pods.push(pod);
    fake.addPod(name);
    // Loopback addresses (a real API server rejects them; the fake accepts them so traffic flows).
    fake.apply(
      makeSlice({
        name: `rasa-${name}`,
        service: 'rasa',
        ports: [{ name: 'http', port: Number(new URL(pod.url).port), protocol: 'TCP' }],
        endpoints: [{ ip: '127.0.0.1', pod: name }],
      }),
    );
  }
  return pods;
}

async function gatewayOn(fake: FakeApiServer, options: { token?: string; identity: string; sessions?: object; deletionCost?: Partial<DeletionCostConfig> }) {
  const kubeConfig = fake.kubeConfig(options.token);
  const config = validateConfig({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    shutdown: { drainTimeoutMs: 1000 },
    pools: {
      dialog: {
        kubernetes: { namespace: 'rasa', service: 'rasa', port: 'http' },
        affinity: 'rasa',
        slotsPerEndpoint: 8,
        ...(options.sessions ? { sessions: options.sessions } : {}),
        // leaseNamespace explicit: the default would follow POD_NAMESPACE if the test runner had it set.
        deletionCost: { enabled: true, intervalMs: 100, leaseDurationSeconds: 1, leaseNamespace: 'rasa', ...options.deletionCost },
      },
    },
  });
  const gateway = await Gateway.create(config, {
    discoveryFactory: async (pool) => new KubernetesDiscovery(kubeConfig, pool.kubernetes!, pool.name, { logger: captureLogger().logger, backoff: { initialMs: 50, maxMs: 300 } }),
    kubeConfig,
    identity: options.identity,
    defaultMetrics: false,
  });
  const urls = await gateway.start();
  await waitFor('gateway ready', async () => (await fetch(`${urls.adminUrl}/readyz`)).status === 200);
  return { gateway, ...urls };
}

/** One user message of a conversation; returns the pod that answered. */
async function say(publicUrl: string, sender: string, message = 'hello'): Promise<string> {
  const res = await fetch(`${publicUrl}/webhooks/rest/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sender, message }),
  });
  await res.arrayBuffer();
  assert.equal(res.status, 200);
  const pod = res.headers.get('x-rasa-pod');
  assert.ok(pod);
  return pod;
}

interface DebugPools {
  pools: { name: string; endpoints: { pod: string; state: string; inflight: number; sessions: number }[] }[];
}

const PODS = ['rasa-0', 'rasa-1', 'rasa-2'];

test('config: deletionCost defaults, needs kubernetes discovery, every error names the field', () => {
  const k8s = { kubernetes: { namespace: 'rasa', service: 'rasa', port: 'http' } };
  const off = validateConfig({ pools: { dialog: k8s } }).pools.dialog!.deletionCost;
  assert.deepEqual(off, { enabled: false, intervalMs: 10_000, leaseName: 'rasa-gateway-deletion-cost', leaseDurationSeconds: 30, minChange: 1 });
  const on = validateConfig({ pools: { dialog: { ...k8s, deletionCost: { enabled: true, leaseNamespace: 'gateway', minChange: 2 } } } }).pools.dialog!.deletionCost;
  assert.equal(on.enabled, true);
  assert.equal(on.leaseNamespace, 'gateway');
  assert.equal(on.minChange, 2);
  // Disabled on a static pool is harmless; enabled is an error that says why.
  validateConfig({ pools: { a: { endpoints: ['http://10.0.0.1:5005'], deletionCost: { enabled: false } } } });
  const cases: [unknown, string, RegExp][] = [
    [{ endpoints: ['http://10.0.0.1:5005'], deletionCost: { enabled: true } }, 'pools.a.deletionCost.enabled', /needs `kubernetes:` discovery/],
    [{ ...k8s, deletionCost: { enabled: 'yes' } }, 'pools.a.deletionCost.enabled', /true or false/],
    [{ ...k8s, deletionCost: { enabled: true, intervalMs: 5 } }, 'pools.a.deletionCost.intervalMs', /integer from 100/],
    [{ ...k8s, deletionCost: { enabled: true, leaseName: 'Not_A_Name' } }, 'pools.a.deletionCost.leaseName', /DNS subdomain/],
    [{ ...k8s, deletionCost: { enabled: true, leaseNamespace: 'a.b' } }, 'pools.a.deletionCost.leaseNamespace', /namespace name/],
    [{ ...k8s, deletionCost: { enabled: true, leaseDurationSeconds: 0 } }, 'pools.a.deletionCost.leaseDurationSeconds', /integer from 1/],
    [{ ...k8s, deletionCost: { enabled: true, minChange: 0 } }, 'pools.a.deletionCost.minChange', /integer from 1/],
    [{ ...k8s, deletionCost: { enabled: true, ttl: 3 } }, 'pools.a.deletionCost.ttl', /unknown key/],
  ];
  for (const [pool, field, message] of cases) {
    assert.throws(
      () => validateConfig({ pools: { a: pool } }),
      (err: unknown) => err instanceof ConfigError && err.field === field && message.test(err.message),
      `${field} ${JSON.stringify(pool)}`,
    );
  }
});

test('through the gateway: each pod annotation follows its live conversations, in-flight requests included', async () => {
  const fake = await FakeApiServer.start();
  let serviceMs = 2;
  const pods = await cluster(fake, () => serviceMs);
  let gw: Awaited<ReturnType<typeof gatewayOn>> | undefined;
  try {
    gw = await gatewayOn(fake, { identity: 'gateway-0' });
    const { publicUrl, adminUrl } = gw;
    // Before any conversation every pod is written once, at 0.
    await waitFor('every pod annotated 0', () => sameCosts(costs(fake, PODS), { 'rasa-0': 0, 'rasa-1': 0, 'rasa-2': 0 }));
    assert.equal(fake.lease('rasa-gateway-deletion-cost')?.spec.holderIdentity, 'gateway-0');
    assert.ok(fake.podPatches.every((p) => p.contentType === 'application/merge-patch+json' && p.token === fake.token));

    const conversations: Record<string, number> = { 'rasa-0': 0, 'rasa-1': 0, 'rasa-2': 0 };
    const converse = async (senders: string[]) => {
      for (const sender of senders) {
        const pod = await say(publicUrl, sender);
        // Sticky: a second message of the conversation lands on the same pod and adds no conversation.
        assert.equal(await say(publicUrl, sender, 'again'), pod);
        conversations[pod]!++;
      }
    };
    await converse(Array.from({ length: 12 }, (_, i) => `user-${i}`));
    await waitFor(`annotations = conversations ${JSON.stringify(conversations)}`, () => sameCosts(costs(fake, PODS), conversations));

    await converse(Array.from({ length: 9 }, (_, i) => `later-${i}`));
    await waitFor(`annotations = conversations ${JSON.stringify(conversations)}`, () => sameCosts(costs(fake, PODS), conversations));
    // The pods' own trackers agree with what the gateway counted.
    for (const pod of pods) assert.equal(pod.trackers.size, conversations[pod.name]);

    // Requests in flight count too: slow pods, new conversations in the air.
    serviceMs = 2000;
    const inAir = Array.from({ length: 6 }, (_, i) => say(publicUrl, `slow-${i}`));
    const seen = await waitFor('annotations = sessions + in-flight while requests run', async () => {
      const d = (await (await fetch(`${adminUrl}/debug/pools`)).json()) as DebugPools;
      const eps = d.pools[0]!.endpoints;
      if (!eps.some((e) => e.inflight > 0)) return false;
      const expected = Object.fromEntries(eps.map((e) => [e.pod, e.sessions + e.inflight]));
      return sameCosts(costs(fake, PODS), expected) && eps.some((e) => e.inflight > 0) ? expected : false;
    });
    const inflightTotal = Object.values(seen).reduce((a, b) => a + b, 0) - Object.values(conversations).reduce((a, b) => a + b, 0);
    assert.ok(inflightTotal > 0, `the annotations counted requests in flight (${JSON.stringify(seen)})`);
    for (const pod of await Promise.all(inAir)) conversations[pod]!++;
    serviceMs = 2;
    // Once answered, only the conversations remain.
    await waitFor(`annotations = conversations ${JSON.stringify(conversations)}`, () => sameCosts(costs(fake, PODS), conversations));
  } finally {
    await gw?.gateway.shutdown(1000);
    await Promise.all(pods.map((p) => p.close()));
    await fake.close();
  }
});

test('through the gateway: conversations that go idle stop counting, and the annotation falls back to 0', async () => {
  const fake = await FakeApiServer.start();
  const pods = await cluster(fake);
  let gw: Awaited<ReturnType<typeof gatewayOn>> | undefined;
  try {
    gw = await gatewayOn(fake, { identity: 'gateway-0', sessions: { idleTtlMs: 1000 } });
    const { publicUrl } = gw;
    // Keep the conversations alive until their count shows up on the pods.
    await waitFor('some conversations counted', async () => {
      for (let i = 0; i < 6; i++) await say(publicUrl, `idle-${i}`);
      return Object.values(costs(fake, PODS)).reduce((a: number, b) => a + (b ?? 0), 0) === 6;
    });
    await waitFor('every annotation back to 0 after the idle TTL', () => sameCosts(costs(fake, PODS), { 'rasa-0': 0, 'rasa-1': 0, 'rasa-2': 0 }));
  } finally {
    await gw?.gateway.shutdown(1000);
    await Promise.all(pods.map((p) => p.close()));
    await fake.close();
  }
});

test('two gateways: only the lease holder writes; on its shutdown it releases the lease and the other takes over at once', async () => {
  const fake = await FakeApiServer.start();
  fake.acceptToken('token-a');
  fake.acceptToken('token-b');
  const pods = await cluster(fake);
  let a: Awaited<ReturnType<typeof gatewayOn>> | undefined;
  let b: Awaited<ReturnType<typeof gatewayOn>> | undefined;
  try {
    // A long lease: B taking over quickly proves the release, not an expiry.
    a = await gatewayOn(fake, { token: 'token-a', identity: 'gateway-a', deletionCost: { leaseDurationSeconds: 60 } });
    await waitFor('gateway-a holds the lease', () => fake.lease('rasa-gateway-deletion-cost')?.spec.holderIdentity === 'gateway-a');
    b = await gatewayOn(fake, { token: 'token-b', identity: 'gateway-b', deletionCost: { leaseDurationSeconds: 60 } });

    // Each replica counts the conversations it has seen; the annotations are the holder's view.
    const viaA: Record<string, number> = { 'rasa-0': 0, 'rasa-1': 0, 'rasa-2': 0 };
    const viaB: Record<string, number> = { 'rasa-0': 0, 'rasa-1': 0, 'rasa-2': 0 };
    for (let i = 0; i < 8; i++) viaA[await say(a.publicUrl, `a-${i}`)]!++;
    for (let i = 0; i < 11; i++) viaB[await say(b.publicUrl, `b-${i}`)]!++;
    await waitFor(`annotations = gateway-a's conversations ${JSON.stringify(viaA)}`, () => sameCosts(costs(fake, PODS), viaA));
    // B kept reading the lease all along, and never wrote a pod or the lease.
    const readsB = fake.leaseReadsByToken.get('token-b') ?? 0;
    await waitFor('gateway-b polled the lease a few more times', () => (fake.leaseReadsByToken.get('token-b') ?? 0) >= readsB + 5);
    assert.deepEqual(fake.podPatches.filter((p) => p.token !== 'token-a'), []);
    assert.deepEqual(fake.leaseWrites.filter((w) => w.token !== 'token-a'), []);
    assert.ok(sameCosts(costs(fake, PODS), viaA));

    const patchesBefore = fake.podPatches.length;
    await a.gateway.shutdown(1000);
    a = undefined;
    const release = fake.leaseWrites.find((w) => w.token === 'token-a' && w.holder === undefined);
    assert.ok(release, 'gateway-a released the lease on shutdown');
    await waitFor('gateway-b holds the lease', () => fake.lease('rasa-gateway-deletion-cost')?.spec.holderIdentity === 'gateway-b');
    // The new holder writes its own view of every pod.
    await waitFor(`annotations = gateway-b's conversations ${JSON.stringify(viaB)}`, () => sameCosts(costs(fake, PODS), viaB));
    assert.ok(fake.podPatches.slice(patchesBefore).every((p) => p.token === 'token-b'));
    assert.equal(fake.lease('rasa-gateway-deletion-cost')?.spec.leaseTransitions, 1);
  } finally {
    await a?.gateway.shutdown(1000);
    await b?.gateway.shutdown(1000);
    await Promise.all(pods.map((p) => p.close()));
    await fake.close();
  }
});

// ---- The writer alone, on a pool whose sessions the test sets directly ----------------------------

function endpoint(pod: string | undefined, port: number): EndpointInfo {
  const origin = `http://127.0.0.1:${port}`;
  return { key: origin, origin, ...(pod ? { pod } : {}), ready: true, serving: true, terminating: false };
}

function poolOf(names: readonly (string | undefined)[]): Pool {
  const { pool } = admissionFor({ name: 'dialog', balancer: 'least-outstanding', slotsPerEndpoint: 4, queue: { maxLength: 10, maxWaitMs: 1000 } });
  pool.update(names.map((n, i) => endpoint(n, 20_000 + i)));
  return pool;
}

function setSessions(pool: Pool, sessions: Record<string, number>): void {
  for (const b of pool.backends) if (sessions[b.pod] !== undefined) b.sessions = sessions[b.pod]!;
}

function writer(fake: FakeApiServer, pool: Pool, identity: string, config: Partial<DeletionCostConfig> = {}, token?: string, extra: { maxPatchesPerInterval?: number } = {}) {
  const log = captureLogger();
  const w = new DeletionCostWriter({ pool, namespace: 'rasa', config: deletionCost(config), kubeConfig: fake.kubeConfig(token), identity, logger: log.logger, env: {}, ...extra });
  return { w, log };
}

test('lease holder crashes without releasing: the other writer takes over only after the lease expired', async () => {
  const fake = await FakeApiServer.start();
  fake.acceptToken('token-1');
  fake.acceptToken('token-2');
  for (const p of PODS) fake.addPod(p);
  const pool1 = poolOf(PODS);
  const pool2 = poolOf(PODS);
  setSessions(pool1, { 'rasa-0': 5, 'rasa-1': 1, 'rasa-2': 0 });
  setSessions(pool2, { 'rasa-0': 2, 'rasa-1': 7, 'rasa-2': 3 });
  const one = writer(fake, pool1, 'writer-1', {}, 'token-1');
  const two = writer(fake, pool2, 'writer-2', {}, 'token-2');
  try {
    one.w.start();
    await waitFor('writer-1 wrote its view', () => sameCosts(costs(fake, PODS), { 'rasa-0': 5, 'rasa-1': 1, 'rasa-2': 0 }));
    two.w.start();
    const renewals = fake.leaseWrites.length;
    await waitFor('writer-1 renewed a few times while writer-2 watched', () => fake.leaseWrites.length >= renewals + 5 && (fake.leaseReadsByToken.get('token-2') ?? 0) >= 5);
    assert.equal(one.w.isLeader, true);
    assert.equal(two.w.isLeader, false);
    assert.ok(fake.leaseWrites.every((w) => w.holder === 'writer-1'));
    assert.ok(fake.podPatches.every((p) => p.token === 'token-1'));

    await one.w.stop({ release: false }); // a crash: the lease stays as it was
    const lastRenewal = fake.leaseWrites[fake.leaseWrites.length - 1]!;
    assert.equal(lastRenewal.holder, 'writer-1');
    await waitFor('writer-2 took over', () => fake.lease('rasa-gateway-deletion-cost')?.spec.holderIdentity === 'writer-2');
    const takeover = fake.leaseWrites.find((w) => w.holder === 'writer-2')!;
    // Not before the lease (1 s) ran out since writer-1's last renewal.
    assert.ok(takeover.at - lastRenewal.at >= 1000 - 50, `took over ${takeover.at - lastRenewal.at} ms after the last renewal`);
    assert.equal(fake.lease('rasa-gateway-deletion-cost')?.spec.leaseTransitions, 1);
    await waitFor("writer-2 wrote its view", () => sameCosts(costs(fake, PODS), { 'rasa-0': 2, 'rasa-1': 7, 'rasa-2': 3 }));
    assert.equal(two.w.isLeader, true);
    assert.deepEqual(one.log.warnings(), []);
    assert.deepEqual(two.log.warnings(), []);
  } finally {
    await one.w.stop();
    await two.w.stop();
    await fake.close();
  }
});

test('rate limit: unchanged pods are not patched again; minChange; a fall to 0 is always written; patches per pass are capped', async () => {
  const fake = await FakeApiServer.start();
  const names = ['rasa-0', 'rasa-1', 'rasa-2', 'rasa-3', 'rasa-4', 'rasa-5'];
  for (const p of names) fake.addPod(p);
  // A pod without a name (only its address) is skipped; a named pod the API server does not know (404) is no error.
  const pool = poolOf([...names, undefined, 'rasa-ghost']);
  setSessions(pool, { 'rasa-0': 4, 'rasa-1': 4, 'rasa-2': 4, 'rasa-3': 4, 'rasa-4': 4, 'rasa-5': 4 });
  const { w, log } = writer(fake, pool, 'writer-1', { minChange: 3 }, undefined, { maxPatchesPerInterval: 2 });
  const all = (n: number) => Object.fromEntries(names.map((p) => [p, n]));
  try {
    w.start();
    await waitFor('every pod written', () => {
      const s = w.status();
      // Capped: never more patches than 2 per pass (the ghost's 404s count against the cap too).
      assert.ok(s.patches <= 2 * s.passes, `${s.patches} patches in ${s.passes} passes`);
      return sameCosts(costs(fake, names), all(4));
    });
    assert.deepEqual([...w.costs().keys()].sort(), [...names, 'rasa-ghost'].sort(), 'the endpoint without a pod name is skipped');
    assert.equal(fake.podPatches.length, 6);

    // Nothing changes: several passes, no patch.
    const quiet = async () => {
      const passes = w.status().passes;
      await waitFor('five more passes', () => w.status().passes >= passes + 5);
    };
    await quiet();
    assert.equal(fake.podPatches.length, 6);

    // Below minChange (3): not written.
    setSessions(pool, { 'rasa-0': 6, 'rasa-1': 2 });
    await quiet();
    assert.equal(fake.podPatches.length, 6);
    assert.ok(sameCosts(costs(fake, names), all(4)));

    // At minChange: written, only those pods.
    setSessions(pool, { 'rasa-0': 7, 'rasa-1': 1 });
    await waitFor('rasa-0 at 7 and rasa-1 at 1', () => sameCosts(costs(fake, names), { ...all(4), 'rasa-0': 7, 'rasa-1': 1 }));
    await quiet();
    assert.equal(fake.podPatches.length, 8);
    assert.deepEqual(fake.podPatches.slice(6).map((p) => p.name).sort(), ['rasa-0', 'rasa-1']);

    // A fall to 0 is written even though it is below minChange: an idle pod should go first.
    setSessions(pool, { 'rasa-1': 0 });
    await waitFor('rasa-1 at 0', () => fake.deletionCost('rasa-1') === '0');
    await quiet();
    assert.equal(fake.podPatches.length, 9);
    assert.deepEqual(log.warnings(), []);
    assert.deepEqual(fake.podPatches.map((p) => p.annotations[POD_DELETION_COST]).slice(-1), ['0']);
  } finally {
    await w.stop();
    await fake.close();
  }
});

test('API errors (5xx, 403, API server down) are logged and retried: nothing crashes and the annotations catch up', async () => {
  const fake = await FakeApiServer.start();
  for (const p of PODS) fake.addPod(p);
  const pool = poolOf(PODS);
  setSessions(pool, { 'rasa-0': 1, 'rasa-1': 2, 'rasa-2': 3 });
  const { w, log } = writer(fake, pool, 'writer-1');
  const isPodPatch = (method: string, path: string) => method === 'PATCH' && path.includes('/pods/');
  const isLease = (_method: string, path: string) => path.includes('/leases');
  try {
    w.start();
    await waitFor('first view written', () => sameCosts(costs(fake, PODS), { 'rasa-0': 1, 'rasa-1': 2, 'rasa-2': 3 }));

    // Pod patches fail with 500, then with 403 (RBAC missing): warned, retried, then written.
    fake.failNext(4, 500, isPodPatch);
    setSessions(pool, { 'rasa-0': 10, 'rasa-1': 20, 'rasa-2': 30 });
    await waitFor('written after the 500s', () => sameCosts(costs(fake, PODS), { 'rasa-0': 10, 'rasa-1': 20, 'rasa-2': 30 }));
    assert.ok(log.warnings().some((l) => /patches failed/.test(l.message) && l.details.status === 500));
    fake.failNext(3, 403, isPodPatch);
    setSessions(pool, { 'rasa-0': 11, 'rasa-1': 21, 'rasa-2': 31 });
    await waitFor('written after the 403s', () => sameCosts(costs(fake, PODS), { 'rasa-0': 11, 'rasa-1': 21, 'rasa-2': 31 }));
    assert.ok(log.warnings().some((l) => /patches failed/.test(l.message) && l.details.status === 403));
    assert.ok(w.status().patchErrors >= 7);

    // The lease requests fail for longer than the lease: the writer stops writing, then takes the lease back.
    const errorsBefore = w.status().leaseErrors;
    fake.failNext(30, 503, isLease);
    await waitFor('lease errors counted and leadership lapsed', () => w.status().leaseErrors >= errorsBefore + 5 && !w.isLeader);
    const patchesWhileLapsed = fake.podPatches.length;
    setSessions(pool, { 'rasa-0': 12 });
    await waitFor('the lease back', () => w.isLeader && fake.lease('rasa-gateway-deletion-cost')?.spec.holderIdentity === 'writer-1');
    await waitFor('written after the lease came back', () => fake.deletionCost('rasa-0') === '12');
    assert.ok(fake.podPatches.length > patchesWhileLapsed);
    assert.ok(log.warnings().some((l) => /lease request failed/.test(l.message) && l.details.status === 503));

    // The API server goes away altogether, then comes back.
    await fake.stop();
    const refused = w.status().leaseErrors;
    setSessions(pool, { 'rasa-0': 3, 'rasa-1': 2, 'rasa-2': 1 });
    await waitFor('connection errors counted', () => w.status().leaseErrors >= refused + 3);
    await fake.restart();
    await waitFor('written after the outage', () => sameCosts(costs(fake, PODS), { 'rasa-0': 3, 'rasa-1': 2, 'rasa-2': 1 }));
  } finally {
    await w.stop();
    await fake.close();
  }
});

test('the fake API server rejects what a real one would: JSON Patch bodies, non-string or non-int32 costs, stale lease versions, millisecond times', async () => {
  const fake = await FakeApiServer.start();
  fake.addPod('rasa-0');
  const base = fake.url;
  const auth = { authorization: `Bearer ${fake.token}` };
  const patch = (contentType: string, body: unknown) =>
    fetch(`${base}/api/v1/namespaces/rasa/pods/rasa-0`, { method: 'PATCH', headers: { ...auth, 'content-type': contentType }, body: JSON.stringify(body) });
  const annotate = (value: unknown) => ({ metadata: { annotations: { [POD_DELETION_COST]: value } } });
  try {
    assert.equal((await patch('application/json-patch+json', annotate('1'))).status, 400);
    assert.equal((await patch('application/json', annotate('1'))).status, 415);
    assert.equal((await patch('application/merge-patch+json', annotate(1))).status, 400);
    assert.equal((await patch('application/merge-patch+json', annotate('4294967296'))).status, 422);
    assert.equal((await patch('application/merge-patch+json', annotate('x'))).status, 422);
    assert.equal(fake.deletionCost('rasa-0'), undefined);
    assert.equal((await patch('application/strategic-merge-patch+json', annotate('-3'))).status, 200);
    assert.equal(fake.deletionCost('rasa-0'), '-3');
    assert.equal((await patch('application/merge-patch+json', annotate(null))).status, 200);
    assert.equal(fake.deletionCost('rasa-0'), undefined, 'null deletes (merge patch)');
    const missing = await fetch(`${base}/api/v1/namespaces/rasa/pods/nope`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/merge-patch+json' }, body: '{}' });
    assert.equal(missing.status, 404);

    const leases = `${base}/apis/coordination.k8s.io/v1/namespaces/rasa/leases`;
    const send = (method: string, url: string, body: unknown) => fetch(url, { method, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await fetch(`${leases}/l`, { headers: auth })).status, 404);
    const micro = '2024-05-01T10:00:00.123456Z';
    assert.equal((await send('POST', leases, { metadata: { name: 'l' }, spec: { holderIdentity: 'x', renewTime: '2024-05-01T10:00:00.123Z' } })).status, 400);
    const created = await send('POST', leases, { metadata: { name: 'l' }, spec: { holderIdentity: 'x', renewTime: micro } });
    assert.equal(created.status, 201);
    const lease = (await created.json()) as { metadata: { resourceVersion: string } };
    assert.equal((await send('POST', leases, { metadata: { name: 'l' }, spec: {} })).status, 409);
    assert.equal((await send('PUT', `${leases}/l`, { metadata: { name: 'l' }, spec: { holderIdentity: 'y' } })).status, 422);
    assert.equal((await send('PUT', `${leases}/l`, { metadata: { name: 'l', resourceVersion: '1' }, spec: { holderIdentity: 'y' } })).status, 409);
    const updated = await send('PUT', `${leases}/l`, { metadata: { name: 'l', resourceVersion: lease.metadata.resourceVersion }, spec: { holderIdentity: 'y', renewTime: micro } });
    assert.equal(updated.status, 200);
    assert.equal(fake.lease('l')?.spec.holderIdentity, 'y');
    assert.equal((await send('PUT', `${leases}/l`, { metadata: { name: 'l', resourceVersion: lease.metadata.resourceVersion }, spec: {} })).status, 409);
  } finally {
    await fake.close();
  }
});
