/**
 * Kubernetes discovery end to end: @kubernetes/client-node's real informer against a loopback API
 * server speaking the list+watch protocol (test/helpers/fake-apiserver.ts), then through a real
 * gateway to emulated Rasa pods. No timing assertions: conditions are polled with generous timeouts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../src/config.js';
import { KubernetesDiscovery, type KubernetesDiscoveryOptions } from '../src/discovery/kubernetes.js';
import type { EndpointInfo } from '../src/discovery/types.js';
import { startRasaPod, type RasaPod } from '../src/emulator/rasa-pod.js';
import { Gateway } from '../src/gateway.js';
import { captureLogger } from './helpers/log-capture.js';
import { waitFor } from './helpers/harness.js';
import { FakeApiServer, makeSlice, type SliceEndpointSpec } from './helpers/fake-apiserver.js';

const source = { namespace: 'rasa', service: 'rasa', port: 'http' } as const;




/** A discovery on the fake server that records every snapshot it delivers. */
function watchService(fake: FakeApiServer, options: KubernetesDiscoveryOptions & { token?: string } = {}) {
  const log = captureLogger();
  const snapshots: EndpointInfo[][] = [];
  const discovery = new KubernetesDiscovery(fake.kubeConfig(options.token), source, 'dialog', { logger: log.logger, ...options });
  let resolved = false;
  const started = discovery.start((eps) => snapshots.push([...eps])).then(() => {
    resolved = true;
  });
  return {
    discovery,
    snapshots,
    log,
    started,
    get resolved() {
      return resolved;
    },
    latest: () => snapshots[snapshots.length - 1],
  };
}

/** Discovery's reading of an endpoint for these tests: ready, draining, or neither (the pool keeps a not-ready pod as `not-ready`). */
function stateIn(snapshot: readonly EndpointInfo[] | undefined, origin: string): 'ready' | 'draining' | 'out' {
  const e = snapshot?.find((x) => x.origin === origin);
  if (!e) return 'out';
  if (e.ready) return 'ready';
  if (e.serving && e.terminating) return 'draining';
  return 'out';
}

function statesOf(snapshot: readonly EndpointInfo[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of snapshot ?? []) {
    const s = stateIn(snapshot, e.origin);
    if (s !== 'out') out[e.origin] = s;
  }
  return out;
}

/** The sequence of distinct states an endpoint went through across the snapshots. */
function history(snapshots: readonly (readonly EndpointInfo[])[], origin: string): string[] {
  const seq: string[] = [];
  for (const s of snapshots) {
    const st = stateIn(s, origin);
    if (seq[seq.length - 1] !== st) seq.push(st);
  }
  return seq;
}

const ready = (ip: string, pod: string): SliceEndpointSpec => ({ ip, pod, zone: 'zone-a' });
const draining = (ip: string, pod: string): SliceEndpointSpec => ({ ip, pod, zone: 'zone-a', ready: false, serving: true, terminating: true });
const leaving = (ip: string, pod: string): SliceEndpointSpec => ({ ip, pod, zone: 'zone-a', ready: false, serving: false, terminating: true });
const slice = (name: string, endpoints: SliceEndpointSpec[], service = 'rasa') => makeSlice({ name, service, endpoints });

const A = 'http://10.244.1.17:5005';
const B = 'http://10.244.2.31:5005';
const C = 'http://10.244.3.5:5005';
const D = 'http://10.244.4.8:5005';

test('the fake API server speaks list+watch: resourceVersions, label selector, bookmarks only when asked, 410 as an ERROR event, bearer token', async () => {
  const fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  const base = `${fake.url}/apis/discovery.k8s.io/v1/namespaces/rasa/endpointslices`;
  const auth = { authorization: `Bearer ${fake.token}` };
  const open: AbortController[] = [];
  /** Reads NDJSON lines from a watch until `n` lines arrived or the server closed it. */
  async function readLines(url: string, n: number): Promise<{ status: number; lines: any[]; closed: boolean }> {
    const controller = new AbortController();
    open.push(controller);
    const res = await fetch(url, { headers: auth, signal: controller.signal });
    const lines: any[] = [];
    const reader = res.body!.getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { status: res.status, lines, closed: true };
      buffered += Buffer.from(value).toString('utf8');
      let i: number;
      while ((i = buffered.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buffered.slice(0, i)));
        buffered = buffered.slice(i + 1);
      }
      if (lines.length >= n) {
        controller.abort();
        return { status: res.status, lines, closed: false };
      }
    }
  }
  try {
    fake.apply(slice('rasa-a', [ready('10.244.1.17', 'rasa-0')]));
    fake.apply(slice('other-a', [ready('10.244.9.9', 'other-0')], 'other'));
    const unauth = await fetch(base);
    assert.equal(unauth.status, 401);
    assert.equal(((await unauth.json()) as { reason: string }).reason, 'Unauthorized');

    const list = (await (await fetch(`${base}?labelSelector=${encodeURIComponent('kubernetes.io/service-name=rasa')}`, { headers: auth })).json()) as any;
    assert.equal(list.kind, 'EndpointSliceList');
    assert.equal(list.metadata.resourceVersion, String(fake.resourceVersion));
    assert.deepEqual(list.items.map((i: any) => i.metadata.name), ['rasa-a']);
    const rv = Number(list.metadata.resourceVersion);

    // Resume from the list's resourceVersion: only later events, filtered by the selector; no bookmarks.
    const later = readLines(`${base}?watch=true&resourceVersion=${rv}&labelSelector=kubernetes.io%2Fservice-name%3Drasa`, 2);
    await waitFor('watch open', () => fake.openWatches === 1);
    fake.apply(slice('other-a', [ready('10.244.9.10', 'other-1')], 'other'));
    fake.apply(slice('rasa-a', [draining('10.244.1.17', 'rasa-0')]));
    await sleep(150); // three bookmark intervals: none may come, they were not asked for
    fake.delete('rasa-a');
    const events = await later;
    assert.deepEqual(events.lines.map((l) => [l.type, l.object.metadata.name]), [['MODIFIED', 'rasa-a'], ['DELETED', 'rasa-a']]);
    assert.ok(Number(events.lines[1].object.metadata.resourceVersion) > Number(events.lines[0].object.metadata.resourceVersion));

    // Bookmarks when asked.
    const withBookmarks = await readLines(`${base}?watch=true&resourceVersion=${fake.resourceVersion}&allowWatchBookmarks=true`, 1);
    assert.equal(withBookmarks.lines[0].type, 'BOOKMARK');
    assert.equal(withBookmarks.lines[0].object.metadata.resourceVersion, String(fake.resourceVersion));

    // Too old after compaction: 200, one ERROR event with a 410 Status, then closed.
    fake.compactHistory();
    const expired = await readLines(`${base}?watch=true&resourceVersion=${rv}`, 5);
    assert.equal(expired.status, 200);
    assert.equal(expired.closed, true);
    assert.equal(expired.lines.length, 1);
    assert.equal(expired.lines[0].type, 'ERROR');
    assert.deepEqual(
      [expired.lines[0].object.kind, expired.lines[0].object.code, expired.lines[0].object.reason],
      ['Status', 410, 'Expired'],
    );
    assert.equal(fake.counters.expired, 1);

    fake.failNext(1, 503);
    assert.equal((await fetch(base, { headers: auth })).status, 503);
    assert.equal((await fetch(base, { headers: auth })).status, 200);
  } finally {
    for (const c of open) c.abort();
    await fake.close();
  }
});

test('creating, updating (ready -> terminating+serving -> removed) and deleting slices shows in the snapshots, in order', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0')]));
  fake.apply(slice('other-xxxxx', [ready('10.244.9.9', 'other-0')], 'other'));
  const w = watchService(fake);
  try {
    await w.started;
    assert.deepEqual(statesOf(w.latest()), { [A]: 'ready' });
    assert.equal(w.latest()![0]!.pod, 'rasa-0');
    assert.equal(w.latest()![0]!.zone, 'zone-a');
    assert.equal(w.discovery.description, 'kubernetes rasa/rasa:http');

    fake.apply(slice('rasa-bbbbb', [ready('10.244.2.31', 'rasa-1')]));
    await waitFor('second slice', () => statesOf(w.latest())[B] === 'ready');

    fake.apply(slice('rasa-aaaaa', [draining('10.244.1.17', 'rasa-0')]));
    await waitFor('rasa-0 draining', () => statesOf(w.latest())[A] === 'draining');

    fake.apply(slice('rasa-aaaaa', [leaving('10.244.1.17', 'rasa-0')]));
    await waitFor('rasa-0 out', () => stateIn(w.latest(), A) === 'out');
    assert.deepEqual(statesOf(w.latest()), { [B]: 'ready' });

    fake.apply(slice('rasa-aaaaa', [ready('10.244.3.5', 'rasa-2')]));
    await waitFor('rasa-2 in the same slice', () => statesOf(w.latest())[C] === 'ready');

    fake.delete('rasa-aaaaa');
    await waitFor('slice a deleted', () => w.latest()!.every((e) => e.origin === B));
    // The API server saying the Service has no endpoints is the one way a pool may empty.
    fake.delete('rasa-bbbbb');
    await waitFor('all deleted', () => w.latest()!.length === 0);

    assert.deepEqual(history(w.snapshots, A), ['ready', 'draining', 'out']);
    assert.deepEqual(history(w.snapshots, B), ['out', 'ready', 'out']);
    assert.deepEqual(history(w.snapshots, C), ['out', 'ready', 'out']);
    assert.ok(w.snapshots.every((s) => s.every((e) => e.pod !== 'other-0')), 'another service leaked in');
    assert.equal(fake.counters.lists, 1);
    assert.equal(w.log.warnings().length, 0);

    w.discovery.stop();
    await waitFor('watch closed after stop', () => fake.openWatches === 0);
  } finally {
    w.discovery.stop();
    await fake.close();
  }
});

test('connections dropped mid-watch with changes meanwhile: the watch resumes from its resourceVersion and loses nothing', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0'), ready('10.244.2.31', 'rasa-1')]));
  fake.apply(slice('rasa-bbbbb', [ready('10.244.3.5', 'rasa-2')]));
  const w = watchService(fake); // default backoff
  try {
    await w.started;
    await waitFor('watch open', () => fake.openWatches === 1);
    const watchesBefore = fake.counters.watches;

    assert.equal(fake.dropConnections(), 1);
    // Written while the client has no watch: it must get them by resuming, not live.
    fake.apply(slice('rasa-aaaaa', [draining('10.244.1.17', 'rasa-0'), ready('10.244.2.31', 'rasa-1')]));
    fake.delete('rasa-bbbbb');
    fake.apply(slice('rasa-ccccc', [ready('10.244.4.8', 'rasa-3')]));
    await waitFor('changes after reconnect', () => {
      const s = statesOf(w.latest());
      return s[A] === 'draining' && s[C] === undefined && s[D] === 'ready' && s[B] === 'ready';
    });
    assert.ok(fake.counters.watches > watchesBefore, 'the client re-watched');
    assert.equal(fake.counters.lists, 1, 'resumed from its resourceVersion without a relist');

    // Again, twice in a row, with one more change each time.
    for (const [i, ip] of ['10.244.5.1', '10.244.5.2'].entries()) {
      await waitFor('watch open again', () => fake.openWatches === 1);
      fake.dropConnections();
      fake.apply(slice(`rasa-extra${i}`, [ready(ip, `rasa-extra-${i}`)]));
    }
    await waitFor('both extras', () => {
      const s = statesOf(w.latest());
      return s['http://10.244.5.1:5005'] === 'ready' && s['http://10.244.5.2:5005'] === 'ready';
    });
    assert.deepEqual(Object.keys(statesOf(w.latest())).sort(), [A, B, D, 'http://10.244.5.1:5005', 'http://10.244.5.2:5005'].sort());
    assert.ok(w.snapshots.every((s) => s.length > 0));
    assert.ok(w.log.warnings().length >= 1, 'the dropped watch was logged');
  } finally {
    w.discovery.stop();
    await fake.close();
  }
});

test('API server outage with 5xx on its return: the last snapshot is kept, never emptied, and changes made meanwhile arrive', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0')]));
  fake.apply(slice('rasa-bbbbb', [ready('10.244.2.31', 'rasa-1')]));
  const w = watchService(fake, { backoff: { initialMs: 50, maxMs: 400 } });
  try {
    await w.started;
    await waitFor('watch open', () => fake.openWatches === 1);
    const beforeOutage = w.snapshots.length;
    const snapshotBefore = w.latest();

    await fake.stop();
    fake.apply(slice('rasa-aaaaa', [draining('10.244.1.17', 'rasa-0')]));
    fake.apply(slice('rasa-ccccc', [ready('10.244.3.5', 'rasa-2')]));
    await waitFor('several failed restarts', () => w.log.warnings().length >= 4);
    assert.equal(w.snapshots.length, beforeOutage, 'nothing delivered while the API server is away');
    assert.deepEqual(w.latest(), snapshotBefore);
    assert.ok(w.log.warnings().some((l) => l.details.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(String(l.details.error))));

    fake.failNext(3, 503);
    await fake.restart();
    await waitFor('changes made during the outage', () => {
      const s = statesOf(w.latest());
      return s[A] === 'draining' && s[B] === 'ready' && s[C] === 'ready';
    });
    assert.equal(fake.counters.failed, 3);
    assert.ok(w.log.warnings().some((l) => l.details.status === 503), 'the 503s were logged');
    assert.ok(w.log.lines.some((l) => l.level === 'info' && /re-established/.test(l.message)));
    assert.ok(w.snapshots.every((s) => s.length >= 2), 'a snapshot lost endpoints because of the outage');
    assert.deepEqual(history(w.snapshots, A), ['ready', 'draining']);
  } finally {
    w.discovery.stop();
    await fake.close();
  }
});

test('410 Expired on a resumed or live watch leads to a relist that converges, including deletions missed meanwhile; other ERROR events back off', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0')]));
  fake.apply(slice('rasa-bbbbb', [ready('10.244.2.31', 'rasa-1')]));
  const w = watchService(fake, { backoff: { initialMs: 50, maxMs: 400 } });
  try {
    await w.started;
    await waitFor('watch open', () => fake.openWatches === 1);

    // Watch cut, changes, history compacted before the client is back: its resourceVersion is too old.
    fake.dropConnections();
    fake.delete('rasa-bbbbb');
    fake.apply(slice('rasa-ccccc', [ready('10.244.3.5', 'rasa-2')]));
    fake.compactHistory();
    await waitFor('converged after relist', () => {
      const s = statesOf(w.latest());
      return s[A] === 'ready' && s[C] === 'ready' && s[B] === undefined;
    });
    assert.equal(fake.counters.expired, 1);
    assert.equal(fake.counters.lists, 2);

    // The same through an outage: the API server comes back with its history compacted.
    await waitFor('watch open', () => fake.openWatches === 1);
    await fake.stop();
    fake.apply(slice('rasa-aaaaa', [draining('10.244.1.17', 'rasa-0')]));
    fake.delete('rasa-ccccc');
    fake.apply(slice('rasa-ddddd', [ready('10.244.4.8', 'rasa-3')]));
    fake.compactHistory();
    await waitFor('a failed restart', () => w.log.warnings().length >= 2);
    await fake.restart();
    await waitFor('converged after the second relist', () => {
      const s = statesOf(w.latest());
      return s[A] === 'draining' && s[D] === 'ready' && s[C] === undefined && Object.keys(s).length === 2;
    });
    assert.equal(fake.counters.expired, 2);
    assert.equal(fake.counters.lists, 3);
    assert.ok(w.snapshots.every((s) => s.length > 0), 'never emptied');
    // The watch is live again after the relist.
    fake.apply(slice('rasa-eeeee', [ready('10.244.5.5', 'rasa-4')]));
    await waitFor('live after relist', () => statesOf(w.latest())['http://10.244.5.5:5005'] === 'ready');

    // A live watch expired by the server (ERROR 410 on the stream): relist.
    await waitFor('watch open', () => fake.openWatches === 1);
    fake.failWatches(410);
    await waitFor('relisted after a 410 event', () => fake.counters.lists === 4 && fake.openWatches === 1);
    // Any other ERROR event: restart with backoff from the same resourceVersion, no relist.
    const warnings = w.log.warnings().length;
    const watches = fake.counters.watches;
    fake.failWatches(500);
    fake.apply(slice('rasa-eeeee', [draining('10.244.5.5', 'rasa-4')]));
    await waitFor('change after the 500 event', () => statesOf(w.latest())['http://10.244.5.5:5005'] === 'draining');
    assert.equal(fake.counters.lists, 4);
    assert.ok(fake.counters.watches > watches);
    const logged = w.log.warnings().slice(warnings);
    assert.equal(logged.length, 1);
    assert.match(String(logged[0]!.details.error), /error event: InternalError/);
    assert.equal(logged[0]!.details.status, 500);
    assert.ok(w.snapshots.every((s) => s.length > 0), 'never emptied');
  } finally {
    w.discovery.stop();
    await fake.close();
  }
});

test('1,000 endpoints across 10 slices apply, all present, in few coalesced snapshots', async () => {
  const fake = await FakeApiServer.start();
  const w = watchService(fake);
  try {
    await w.started;
    assert.deepEqual(w.latest(), [], 'a service without slices lists as empty');
    const expected = new Set<string>();
    const build = (s: number, spec: (ip: string, pod: string) => SliceEndpointSpec) =>
      slice(
        `rasa-${String(s).padStart(2, '0')}`,
        Array.from({ length: 100 }, (_, i) => {
          const ip = `10.${100 + s}.${Math.floor(i / 100)}.${(i % 100) + 1}`;
          return spec(ip, `rasa-${s}-${i}`);
        }),
      );
    for (let s = 0; s < 10; s++) {
      const sl = fake.apply(build(s, ready));
      for (const e of sl.endpoints as { addresses: string[] }[]) expected.add(`http://${e.addresses[0]}:5005`);
    }
    assert.equal(expected.size, 1000);
    await waitFor('1,000 ready endpoints', () => Object.keys(statesOf(w.latest())).length === 1000);
    const latest = w.latest()!;
    assert.equal(latest.length, 1000);
    assert.deepEqual(new Set(latest.map((e) => e.key)), expected);
    assert.ok(latest.every((e) => e.ready && e.pod?.startsWith('rasa-')));
    // One snapshot per event loop turn at most: never one per endpoint.
    assert.ok(w.snapshots.length <= 11, `${w.snapshots.length} snapshots for 10 slice events`);

    // One whole slice goes terminating at once.
    fake.apply(build(3, draining));
    await waitFor('100 draining', () => Object.values(statesOf(w.latest())).filter((s) => s === 'draining').length === 100);
    assert.equal(w.latest()!.length, 1000);

    // And a relist of all of it after a compaction.
    await waitFor('watch open', () => fake.openWatches === 1);
    fake.dropConnections();
    fake.delete('rasa-09');
    fake.compactHistory();
    await waitFor('900 after relist', () => w.latest()!.length === 900);
    assert.equal(fake.counters.lists, 2);
  } finally {
    w.discovery.stop();
    await fake.close();
  }
});

test('a wrong token: start does not resolve, failures are logged and retried, nothing crashes; it recovers when the token is accepted', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0')]));
  const w = watchService(fake, { token: 'expired-token', backoff: { initialMs: 50, maxMs: 200 } });
  const stopped = watchService(fake, { token: 'revoked-token', backoff: { initialMs: 50, maxMs: 100 } });
  try {
    await waitFor('repeated 401s', () => w.log.warnings().length >= 3 && stopped.log.warnings().length >= 2);
    assert.equal(w.resolved, false);
    assert.equal(w.snapshots.length, 0);
    const warning = w.log.warnings()[0]!;
    assert.equal(warning.details.status, 401);
    assert.match(warning.message, /list failed/);
    assert.ok((fake.rejectedTokens.get('expired-token') ?? 0) >= 3);

    // stop() while retrying leaves nothing behind: no more requests from it (one may be in flight).
    stopped.discovery.stop();
    const atStop = fake.rejectedTokens.get('revoked-token')!;
    // The server now accepts the other token (a rotated service account token, say).
    fake.token = 'expired-token';
    await waitFor('start resolves after recovery', () => w.resolved);
    assert.deepEqual(statesOf(w.latest()), { [A]: 'ready' });
    await sleep(300); // three max backoffs of the stopped one
    const settled = fake.rejectedTokens.get('revoked-token')!;
    assert.ok(settled <= atStop + 1);
    await sleep(300);
    assert.equal(fake.rejectedTokens.get('revoked-token'), settled);
    assert.equal(stopped.resolved, false);
    assert.equal(stopped.snapshots.length, 0);
    assert.equal(fake.counters.lists, 1, 'only the live discovery listed');
  } finally {
    w.discovery.stop();
    stopped.discovery.stop();
    await fake.close();
  }
});

test('stop() right after start() leaves no watch, no request and no timer behind', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0')]));
  const w = watchService(fake);
  w.discovery.stop();
  try {
    // The list already on its way is answered, but neither applied nor followed by a watch.
    await waitFor('the in-flight list reached the server', () => fake.counters.lists === 1);
    await sleep(300);
    assert.equal(fake.counters.watches, 0);
    assert.equal(fake.openWatches, 0);
    assert.equal(w.snapshots.length, 0);
    assert.equal(w.resolved, false);
    assert.equal(w.log.warnings().length, 0, 'errors after stop() are not reported');
  } finally {
    await fake.close();
  }
});

test('fromDefaultCredentials reads KUBECONFIG', async () => {
  const fake = await FakeApiServer.start();
  fake.apply(slice('rasa-aaaaa', [ready('10.244.1.17', 'rasa-0')]));
  const dir = await mkdtemp(join(tmpdir(), 'kubeconfig-'));
  const file = join(dir, 'config');
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{ name: fake, cluster: { server: "' + fake.url + '", insecure-skip-tls-verify: true } }]',
      'users: [{ name: fake, user: { token: "' + fake.token + '" } }]',
      'contexts: [{ name: fake, context: { cluster: fake, user: fake, namespace: rasa } }]',
      'current-context: fake',
      '',
    ].join('\n'),
  );
  const saved = process.env.KUBECONFIG;
  process.env.KUBECONFIG = file;
  const log = captureLogger();
  let discovery: KubernetesDiscovery | undefined;
  try {
    discovery = KubernetesDiscovery.fromDefaultCredentials(source, 'dialog', { logger: log.logger });
    let snapshot: readonly EndpointInfo[] = [];
    await discovery.start((eps) => (snapshot = eps));
    assert.deepEqual(statesOf(snapshot), { [A]: 'ready' });
  } finally {
    if (saved === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved;
    discovery?.stop();
    await rm(dir, { recursive: true, force: true });
    await fake.close();
  }
});

interface DebugPools {
  pools: { name: string; discovery: string; synced: boolean; endpoints: { url: string; pod: string; state: string; inflight: number }[] }[];
}

test('end to end through the gateway: readiness, routing to the pod a slice names, draining, removal, API server killed', async () => {
  const fake = await FakeApiServer.start();
  const pods: RasaPod[] = [];
  let gateway: Gateway | undefined;
  const log = captureLogger();
  try {
    pods.push(await startRasaPod({ name: 'rasa-0', slots: 4, serviceTimeMs: 2 }));
    pods.push(await startRasaPod({ name: 'rasa-1', slots: 4, serviceTimeMs: 2 }));
    const [pod0, pod1] = pods as [RasaPod, RasaPod];
    // Loopback addresses (a real API server rejects them; the fake accepts them so traffic flows).
    // One slice per pod: they listen on different ports, and slices of one Service may differ in port.
    const podSlice = (name: string, pod: RasaPod, spec: (ip: string, p: string) => SliceEndpointSpec) =>
      makeSlice({
        name,
        service: 'rasa',
        ports: [{ name: 'http', port: Number(new URL(pod.url).port), protocol: 'TCP' }],
        endpoints: [spec('127.0.0.1', pod.name)],
      });
    fake.apply(podSlice('rasa-p0', pod0, ready));
    // The API server is down while the gateway starts: /readyz must wait for the first list.
    await fake.stop();

    const kubeConfig = fake.kubeConfig();
    const config = validateConfig({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'silent' },
      pools: { dialog: { kubernetes: { namespace: 'rasa', service: 'rasa', port: 'http' } } },
    });
    gateway = await Gateway.create(config, {
      discoveryFactory: async (pool) =>
        new KubernetesDiscovery(kubeConfig, pool.kubernetes!, pool.name, { logger: log.logger, backoff: { initialMs: 50, maxMs: 300 } }),
      defaultMetrics: false,
    });
    const { publicUrl, adminUrl } = await gateway.start();
    const debug = async () => (await (await fetch(`${adminUrl}/debug/pools`)).json()) as DebugPools;
    const endpoints = async () => (await debug()).pools[0]!.endpoints;
    const podOf = async (path = '/version') => {
      const res = await fetch(`${publicUrl}${path}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200);
      return res.headers.get('x-rasa-pod');
    };

    const notReady = await fetch(`${adminUrl}/readyz`);
    assert.equal(notReady.status, 503);
    assert.match(JSON.stringify(await notReady.json()), /first endpoint list/);
    await waitFor('a failed first list', () => log.warnings().length >= 1);
    assert.equal((await fetch(`${adminUrl}/readyz`)).status, 503);

    await fake.restart();
    await waitFor('readyz 200', async () => (await fetch(`${adminUrl}/readyz`)).status === 200);
    const d = await debug();
    assert.equal(d.pools[0]!.discovery, 'kubernetes rasa/rasa:http');
    assert.deepEqual(d.pools[0]!.endpoints.map((e) => [e.url, e.pod, e.state]), [[pod0.url, 'rasa-0', 'ready']]);
    assert.equal(await podOf(), 'rasa-0');

    fake.apply(podSlice('rasa-p1', pod1, ready));
    await waitFor('rasa-1 ready in /debug/pools', async () => (await endpoints()).some((e) => e.pod === 'rasa-1' && e.state === 'ready'));

    fake.apply(podSlice('rasa-p0', pod0, draining));
    await waitFor('rasa-0 draining', async () => (await endpoints()).some((e) => e.pod === 'rasa-0' && e.state === 'draining'));
    for (let i = 0; i < 10; i++) assert.equal(await podOf(), 'rasa-1', 'a draining pod takes nothing new');

    fake.apply(podSlice('rasa-p0', pod0, leaving));
    await waitFor('rasa-0 removed', async () => (await endpoints()).every((e) => e.pod !== 'rasa-0'));
    assert.deepEqual((await endpoints()).map((e) => [e.pod, e.state]), [['rasa-1', 'ready']]);

    // Kill the API server: routing continues on the last known endpoints.
    const warningsBefore = log.warnings().length;
    await fake.stop();
    await waitFor('discovery noticed the outage', () => log.warnings().length >= warningsBefore + 2);
    for (let i = 0; i < 5; i++) assert.equal(await podOf('/'), 'rasa-1');
    assert.deepEqual((await endpoints()).map((e) => [e.pod, e.state]), [['rasa-1', 'ready']]);
    assert.equal((await fetch(`${adminUrl}/readyz`)).status, 200);
    assert.equal((pod1.counts.get('GET /version') ?? 0) + (pod1.counts.get('GET /') ?? 0), 15);
    assert.equal(pod0.counts.get('GET /version'), 1);
  } finally {
    if (gateway) await gateway.shutdown(0);
    for (const p of pods) await p.close();
    await fake.close();
  }
});
