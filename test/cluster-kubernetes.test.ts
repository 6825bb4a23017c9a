/**
 * Kubernetes membership against the project's list+watch test API server: the replicas come from the
 * EndpointSlices of the gateway's headless Service (a replica added to the slice joins, one removed
 * leaves), and one coordination.k8s.io Lease per pool, held under the advertise URL, names the same
 * scheduler on every replica; a scheduler that stops releases its Leases and another takes over.
 * Three in-process cluster members on 127.0.0.1-3, same port, real loopback TCP between them.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCluster, type Cluster } from '../src/cluster/cluster.js';
import { schedulerLeaseName } from '../src/cluster/lease-elector.js';
import { FakeApiServer, makeSlice } from './helpers/fake-apiserver.js';
import { freePort, waitFor } from './helpers/cluster.js';

const pools = ['nlu', 'dialog', 'Chat_EN'];
const service = 'rasa-gateway-cluster';
let fake: FakeApiServer;
let port: number;
const members = new Map<string, Cluster>();

before(async () => {
  fake = await FakeApiServer.start();
  port = await freePort('127.0.0.1');
});

after(async () => {
  await Promise.all([...members.values()].map((m) => m.stop()));
  await fake.close();
});

const url = (ip: string) => `http://${ip}:${port}`;

function publish(ips: readonly string[]): void {
  fake.apply(makeSlice({ name: `${service}-abcde`, service, ports: [{ name: 'cluster', port, protocol: 'TCP' }], endpoints: ips.map((ip, i) => ({ ip, pod: `rasa-gateway-${i}` })) }));
}

async function join(ip: string): Promise<Cluster> {
  const cluster = await createCluster(
    { listen: { host: ip, port }, advertise: url(ip), kubernetes: { namespace: 'rasa', service, port: 'cluster', leaseDurationSeconds: 1 }, heartbeatMs: 50, deadAfterMs: 1000 },
    { kubeConfig: fake.kubeConfig() },
  );
  await cluster.start(pools);
  members.set(ip, cluster);
  return cluster;
}

function known(cluster: Cluster): string[] {
  return cluster.peers().map((p) => p.url).sort();
}

/** Every member in `ips` sees exactly `ips` alive, has quorum, and all name the same live scheduler per pool, the holder of its Lease. */
function agreed(ips: readonly string[]): Promise<Record<string, string>> {
  const urls = ips.map(url).sort();
  return waitFor(`agreement among ${urls.join(', ')}`, () => {
    const views = ips.map((ip) => members.get(ip)!);
    if (!views.every((c) => c.hasQuorum() && JSON.stringify(known(c)) === JSON.stringify(urls) && c.peers().every((p) => p.state === 'alive'))) return undefined;
    const out: Record<string, string> = {};
    for (const pool of pools) {
      const s = views[0]!.schedulerOf(pool);
      if (!s || !urls.includes(s) || views.some((c) => c.schedulerOf(pool) !== s)) return undefined;
      if (fake.lease(schedulerLeaseName(service, pool), 'rasa')?.spec.holderIdentity !== s) return undefined;
      out[pool] = s;
    }
    return out;
  }, 20_000);
}

test('peers come from the headless Service: a replica added to the slice joins, one removed leaves', async () => {
  publish(['127.0.0.1', '127.0.0.2']);
  await Promise.all([join('127.0.0.1'), join('127.0.0.2')]);
  await agreed(['127.0.0.1', '127.0.0.2']);

  const third = await join('127.0.0.3');
  // Not in the slice yet: the others do not count it, and alone it has no quorum (2 of 3 unknown to it are silent).
  assert.equal(third.hasQuorum(), false);
  assert.deepEqual(known(members.get('127.0.0.1')!), [url('127.0.0.1'), url('127.0.0.2')]);
  publish(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  await agreed(['127.0.0.1', '127.0.0.2', '127.0.0.3']);

  publish(['127.0.0.1', '127.0.0.3']);
  await waitFor('the removed replica to leave the others\' sets', () =>
    ['127.0.0.1', '127.0.0.3'].every((ip) => JSON.stringify(known(members.get(ip)!)) === JSON.stringify([url('127.0.0.1'), url('127.0.0.3')])) ? true : undefined,
  );
  await members.get('127.0.0.2')!.stop();
  members.delete('127.0.0.2');
  await agreed(['127.0.0.1', '127.0.0.3']);
});

test('one Lease per pool names the scheduler; when it stops, its Leases are released and another replica takes over', async () => {
  const ips = [...members.keys()];
  const before = await agreed(ips);
  for (const pool of pools) {
    const lease = fake.lease(schedulerLeaseName(service, pool), 'rasa');
    assert.match(lease?.metadata.name ?? '', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS label');
  }
  assert.notEqual(schedulerLeaseName(service, 'Chat_EN'), schedulerLeaseName(service, 'chat-en'), 'names that lower-case alike get two Leases');
  const leaving = before.dialog!;
  const ip = new URL(leaving).hostname;
  await members.get(ip)!.stop();
  members.delete(ip);
  publish(ips.filter((x) => x !== ip));
  const afterStop = await agreed(ips.filter((x) => x !== ip));
  assert.notEqual(afterStop.dialog, leaving);
});
