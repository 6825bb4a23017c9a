/**
 * The cluster's pure rules, with injected time: degraded-mode slot shares (property-tested: never more
 * than a pod's slots in total, every replica computes the same assignment, balanced within one), and
 * membership (suspect on a dropped link, dead after deadAfterMs, quorum from echoed heartbeats that
 * lapses within deadAfterMs/2 of the last echo).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { shareOf } from '../src/cluster/shares.js';
import { Membership } from '../src/cluster/membership.js';

const replicaSet = fc.uniqueArray(fc.webUrl(), { minLength: 1, maxLength: 9 });

test('shares of a pod add up to exactly its slots, whatever the order of the list, within one of each other', () => {
  fc.assert(
    fc.property(fc.string(), fc.integer({ min: 0, max: 64 }), replicaSet, (pod, slots, replicas) => {
      const shuffled = [...replicas].reverse();
      const shares = replicas.map((r) => shareOf(pod, slots, replicas, r));
      assert.equal(shares.reduce((a, b) => a + b, 0), slots);
      assert.deepEqual(replicas.map((r) => shareOf(pod, slots, shuffled, r)), shares, 'every replica computes the same assignment');
      assert.ok(Math.max(...shares) - Math.min(...shares) <= 1);
    }),
    { numRuns: 1000 },
  );
});

test('a replica outside the list gets no share; unlimited stays unlimited', () => {
  assert.equal(shareOf('pod', 4, ['http://a:1', 'http://b:1'], 'http://c:1'), 0);
  assert.equal(shareOf('pod', Infinity, ['http://a:1'], 'http://a:1'), Infinity);
  assert.equal(shareOf('pod', 3, [], 'http://a:1'), 0);
});

test('remainders spread over replicas from pod to pod', () => {
  const replicas = ['http://10.0.0.1:9095', 'http://10.0.0.2:9095', 'http://10.0.0.3:9095'];
  const totals = replicas.map((r) => Array.from({ length: 300 }, (_, i) => shareOf(`http://10.1.0.${i}:5005`, 2, replicas, r)).reduce((a, b) => a + b, 0));
  assert.equal(totals.reduce((a, b) => a + b, 0), 600);
  for (const t of totals) assert.ok(t > 150 && t < 250, `each replica holds about a third of 600 slots: ${totals.join(', ')}`);
});

test('membership: suspect when the link drops, dead after deadAfterMs; quorum lapses deadAfterMs/2 after the last echo', () => {
  const [self, b, c] = ['http://a:1', 'http://b:1', 'http://c:1'];
  const m = new Membership({ self, deadAfterMs: 2000 });
  m.setKnown([self, b, c], 0);
  assert.equal(m.hasQuorum(0), false, 'no contact yet');
  for (const peer of [b, c]) m.linkUp(peer, 'inc-1', 0);
  assert.deepEqual(m.evaluate(0), [[b, 'alive'], [c, 'alive']]);
  assert.equal(m.hasQuorum(0), false, 'heard, but no echo of ours yet');
  const ours = m.heartbeatFor(b, 100);
  m.heartbeat(b, { t: 'sys.hb', s: 5, e: ours.s });
  assert.equal(m.hasQuorum(150), true, 'two of three');
  assert.equal(m.hasQuorum(100 + 999), true);
  assert.equal(m.hasQuorum(100 + 1000), false, 'the echo is deadAfterMs/2 old');
  assert.deepEqual(m.heartbeatFor(b, 200), { t: 'sys.hb', s: 200, e: 5 }, 'their timestamp is echoed back');

  m.heard(b, 1000);
  m.linkDown(b);
  assert.deepEqual(m.evaluate(1001), [[b, 'suspect'], [c, 'suspect']], 'b: link down; c: silent for deadAfterMs/2');
  assert.equal(m.hasQuorum(1001), false);
  assert.deepEqual(m.evaluate(2999), [[c, 'dead']]);
  assert.deepEqual(m.evaluate(3000), [[b, 'dead']]);
  assert.deepEqual(m.alive(), [self]);
  assert.equal(m.linkUp(b, 'inc-2', 3100), true, 'a new incarnation is a restart');
  assert.deepEqual(m.evaluate(3100), [[b, 'alive']]);
});

test('cluster config: defaults, advertise from POD_IP, and errors that name the field', async () => {
  const { validateConfig, ConfigError } = await import('../src/config.js');
  const pools = { p: { endpoints: ['http://10.0.0.5:5005'] } };
  const doc = (cluster: unknown) => ({ pools, cluster });
  assert.equal(validateConfig({ pools }).cluster, undefined, 'no cluster section: no cluster');
  const c = validateConfig(doc({ peers: ['http://10.1.2.3:9095', 'http://10.1.2.4:9095'] }), { POD_IP: '10.1.2.3' }).cluster;
  assert.deepEqual(c, { listen: { host: '0.0.0.0', port: 9095 }, advertise: 'http://10.1.2.3:9095', peers: ['http://10.1.2.3:9095', 'http://10.1.2.4:9095'], heartbeatMs: 250, deadAfterMs: 2000, prefetchGrants: 1, takeoverWaitMs: 1000 });
  const k = validateConfig(doc({ kubernetes: { service: 'gw-cluster', port: 'cluster' } }), { POD_IP: '10.1.2.3', POD_NAMESPACE: 'rasa' }).cluster;
  assert.deepEqual(k?.kubernetes, { namespace: 'rasa', service: 'gw-cluster', port: 'cluster', leaseDurationSeconds: 5 });
  const wait = (cluster: object) => validateConfig(doc({ peers: ['http://10.1.2.3:9095'], ...cluster }), { POD_IP: '10.1.2.3' }).cluster?.takeoverWaitMs;
  assert.equal(wait({ deadAfterMs: 4000 }), 2000, 'takeoverWaitMs follows deadAfterMs');
  assert.equal(wait({ takeoverWaitMs: 0 }), 0, 'an explicit 0 is kept');
  const refused = (cluster: unknown, field: string, env: NodeJS.ProcessEnv = { POD_IP: '10.1.2.3' }) =>
    assert.throws(() => validateConfig(doc(cluster), env), (err: unknown) => err instanceof ConfigError && err.field === field, field);
  refused({}, 'cluster');
  refused({ peers: ['http://10.1.2.3:9095'], kubernetes: { service: 's', port: 1 } }, 'cluster');
  refused({ peers: ['http://10.1.2.4:9095'] }, 'cluster.peers');
  refused({ peers: ['http://10.1.2.4:9095'], advertise: 'http://10.1.2.3:9095' }, 'cluster.advertise');
  refused({ peers: ['ftp://x:1'] }, 'cluster.peers[0]');
  refused({ peers: ['http://10.1.2.3:9095'], heartbeatMs: 1000 }, 'cluster.deadAfterMs');
  refused({ peers: ['http://10.1.2.3:9095'], listen: { port: 0 } }, 'cluster.listen.port');
  refused({ peers: ['http://10.1.2.3:9095'], gossip: true }, 'cluster.gossip');
  refused({ kubernetes: { service: 's' } }, 'cluster.kubernetes.port');
});
