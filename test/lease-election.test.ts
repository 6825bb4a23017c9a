/**
 * Lease election (src/kubernetes/lease-election.ts) on its own, against the loopback API server
 * (test/helpers/fake-apiserver.ts): of two electors exactly one leads and the other only reads; the
 * leader's stop releases the Lease, so the other takes over long before the lease could expire.
 * Conditions are polled with generous timeouts; the one timing bound is far below the lease duration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseElection, type LeaseElectionOptions } from '../src/kubernetes/lease-election.js';
import { captureLogger } from './helpers/log-capture.js';
import { waitFor } from './helpers/harness.js';
import { FakeApiServer } from './helpers/fake-apiserver.js';

const LEASE = 'scheduler-dialog';

function elector(fake: FakeApiServer, identity: string, overrides: Partial<LeaseElectionOptions> = {}) {
  const token = `token-${identity}`;
  fake.acceptToken(token);
  const changes: boolean[] = [];
  const errors: string[] = [];
  const log = captureLogger();
  const election = new LeaseElection({
    name: LEASE,
    namespace: 'rasa',
    identity,
    // Long: a takeover within seconds can only come from the release.
    leaseDurationSeconds: 60,
    renewIntervalMs: 100,
    kubeConfig: fake.kubeConfig(token),
    labels: { 'app.kubernetes.io/name': 'rasa-gateway' },
    purpose: 'scheduler',
    logger: log.logger,
    onChange: (leader) => changes.push(leader),
    onError: (e) => errors.push(e.error),
    env: {},
    ...overrides,
  });
  return { election, token, changes, errors, log };
}

/** Runs `body` with two electors and the fake, then stops and closes everything, whatever happened. */
async function withElectors(body: (fake: FakeApiServer, a: ReturnType<typeof elector>, b: ReturnType<typeof elector>) => Promise<void>, overrides: Partial<LeaseElectionOptions> = {}) {
  const fake = await FakeApiServer.start();
  const a = elector(fake, 'gateway-a', overrides);
  const b = elector(fake, 'gateway-b', overrides);
  try {
    await body(fake, a, b);
  } finally {
    await a.election.stop();
    await b.election.stop();
    await fake.close();
  }
}

test('two electors: one leads, the other stands by; the leader stops, releases the lease and the other takes over at once', () =>
  withElectors(async (fake, a, b) => {
    a.election.start();
    await waitFor('gateway-a leads', () => a.election.isLeader);
    b.election.start();
    const readsB = () => fake.leaseReadsByToken.get(b.token) ?? 0;
    await waitFor('gateway-b looked at the lease a few times', () => readsB() >= 5);

    assert.equal(a.election.isLeader, true);
    assert.equal(b.election.isLeader, false);
    assert.equal(b.election.status().holder, 'gateway-a');
    const lease = fake.lease(LEASE)!;
    assert.equal(lease.spec.holderIdentity, 'gateway-a');
    assert.equal(lease.spec.leaseDurationSeconds, 60);
    assert.equal(lease.metadata.labels?.['app.kubernetes.io/name'], 'rasa-gateway');
    assert.ok(fake.leaseWrites.length >= 2, 'the leader renews');
    assert.deepEqual(fake.leaseWrites.filter((w) => w.token !== a.token), [], 'the other elector only reads');
    assert.deepEqual(a.changes, [true]);
    assert.deepEqual(b.changes, []);

    const stoppedAt = Date.now();
    await a.election.stop();
    assert.equal(a.election.isLeader, false);
    assert.deepEqual(a.changes, [true, false]);
    const release = fake.leaseWrites.find((w) => w.token === a.token && w.holder === undefined);
    assert.ok(release, 'gateway-a released the lease on stop');
    assert.ok(a.log.lines.some((l) => l.message === 'scheduler lease released'));

    await waitFor('gateway-b leads', () => b.election.isLeader);
    const takeover = fake.leaseWrites.find((w) => w.holder === 'gateway-b')!;
    assert.ok(takeover.at - stoppedAt < 5000, `took over ${takeover.at - stoppedAt} ms after the stop (the lease lasts 60 s)`);
    assert.equal(fake.lease(LEASE)?.spec.holderIdentity, 'gateway-b');
    assert.equal(fake.lease(LEASE)?.spec.leaseTransitions, 1);
    assert.deepEqual(b.changes, [true]);
    assert.equal(b.election.status().acquisitions, 1);

    // The last one out releases it too: nobody holds it.
    await b.election.stop();
    assert.equal(fake.lease(LEASE)?.spec.holderIdentity, '');
    assert.deepEqual(b.changes, [true, false]);
    assert.deepEqual([...a.log.warnings(), ...b.log.warnings()], []);
  }));

test('stop without release leaves the lease held, so the other elector waits for it to expire', () =>
  withElectors(async (fake, a, b) => {
    a.election.start();
    await waitFor('gateway-a leads', () => a.election.isLeader);
    await a.election.stop({ release: false });
    assert.equal(a.election.isLeader, false);
    assert.equal(fake.lease(LEASE)?.spec.holderIdentity, 'gateway-a');
    b.election.start();
    const readsB = () => fake.leaseReadsByToken.get(b.token) ?? 0;
    await waitFor('gateway-b looked at the lease a few times', () => readsB() >= 5);
    assert.equal(b.election.isLeader, false);
    assert.equal(b.election.status().holder, 'gateway-a');
    assert.deepEqual(fake.leaseWrites.filter((w) => w.token !== a.token), []);
  }));

test('API errors are counted, logged with the purpose, reported, and the election recovers', () =>
  withElectors(
    async (fake, a) => {
      fake.failNext(3, 503, (_method, path) => path.includes('/leases'));
      a.election.start();
      await waitFor('leads after the failures', () => a.election.isLeader);
      assert.equal(a.election.status().errors, 3);
      assert.equal(a.errors.length, 3);
      const warned = a.log.warnings();
      assert.equal(warned.length, 3);
      assert.ok(warned.every((l) => l.message === 'scheduler lease request failed; retrying' && l.details.status === 503 && l.details.pool === 'dialog'));
      assert.equal(a.election.status().lease, `rasa/${LEASE}`);
    },
    { leaseDurationSeconds: 1, logContext: { pool: 'dialog' } },
  ));
