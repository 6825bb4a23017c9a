/**
 * Accounting is correct by construction: a model-based property test (fast-check, seeded) drives one
 * pool through random sequences of what happens in production (requests admitted, pinned to a
 * conversation's pod, released once or twice with any outcome, cancelled while queued, retried; pods
 * flapping not ready, ejected and restored, leaving and returning, their slot counts changing) and
 * checks after every step that no pod ever got a slot beyond its limit, that the pool's counts equal
 * what the leases say, and at the end, once every lease is released, that everything is back to zero.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Outcome } from '../src/pool/pool.js';
import type { Backend } from '../src/pool/backend.js';
import { admissionFor, endpoint, RecordingTicket } from './helpers/tickets.js';

const PODS = 4;
const outcomes: Outcome[] = ['ok', 'pod-error', 'timeout', 'client-left', 'gateway-error'];

type Op =
  | { kind: 'admit'; pinned: number | undefined }
  | { kind: 'release'; index: number; outcome: Outcome; twice: boolean }
  | { kind: 'cancel'; index: number }
  | { kind: 'retry'; index: number }
  | { kind: 'pods'; states: ('ready' | 'not-ready' | 'draining' | 'absent')[] }
  | { kind: 'eject'; pod: number; restore: boolean }
  | { kind: 'limit'; pod: number; slots: number }
  | { kind: 'tick'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('admit' as const), pinned: fc.option(fc.nat({ max: PODS - 1 }), { nil: undefined }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), index: fc.nat(), outcome: fc.constantFrom(...outcomes), twice: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('retry' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pods' as const), states: fc.array(fc.constantFrom('ready' as const, 'ready' as const, 'not-ready' as const, 'draining' as const, 'absent' as const), { minLength: PODS, maxLength: PODS }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('eject' as const), pod: fc.nat({ max: PODS - 1 }), restore: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('limit' as const), pod: fc.nat({ max: PODS - 1 }), slots: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 50 }) }) },
);

function run(ops: Op[], dispatch: 'greedy' | 'earliest-completion'): void {
  let now = 0;
  const pool = admissionFor({ name: 'p', balancer: 'least-outstanding', slotsPerEndpoint: 2, dispatch, queue: { maxLength: 1000, maxWaitMs: 1e9 }, now: () => now });
  const everyBackend = new Set<Backend>();
  pool.pool.listen({ backendAdded: (b) => everyBackend.add(b) });
  // A grant beyond a pod's limit is the one thing that must never happen.
  pool.listen({ requestStarted: (b) => assert.ok(b.inflight <= b.limit, `${b.pod}: ${b.inflight} in flight, ${b.limit} slots`) });
  pool.pool.update(Array.from({ length: PODS }, (_, i) => endpoint(i + 1)));
  const tickets: RecordingTicket[] = [];
  const byPod = (i: number) => pool.pool.get(endpoint(i + 1).key);
  const pick = (index: number) => (tickets.length === 0 ? undefined : tickets[index % tickets.length]);

  for (const o of ops) {
    switch (o.kind) {
      case 'admit': {
        const t = new RecordingTicket();
        if (o.pinned !== undefined) t.target = byPod(o.pinned);
        t.repinTo = undefined;
        tickets.push(t);
        pool.admit(t);
        break;
      }
      case 'release': {
        const t = pick(o.index);
        if (t?.lease) {
          t.lease.release(o.outcome, 10);
          if (o.twice) t.lease.release('ok', 10);
        }
        break;
      }
      case 'cancel': {
        const t = pick(o.index);
        if (t) pool.cancel(t);
        break;
      }
      case 'retry': {
        const t = pick(o.index);
        if (t?.state === 'granted') {
          const first = t.lease!;
          first.release('pod-error');
          t.state = 'new';
          t.avoid = first.backend;
          pool.admit(t);
          if (t.lease !== first) assert.equal(t.lease?.attempt, first.attempt + 1, 'a retry takes a new lease');
        }
        break;
      }
      case 'pods':
        pool.pool.update(o.states.flatMap((s, i) => (s === 'absent' ? [] : [endpoint(i + 1, { ready: s === 'ready', serving: s !== 'not-ready', terminating: s === 'draining' })])));
        break;
      case 'eject': {
        const b = byPod(o.pod);
        if (b) (o.restore ? pool.pool.restore(b) : pool.pool.eject(b, 'passive'));
        break;
      }
      case 'limit': {
        const b = byPod(o.pod);
        if (b) pool.pool.setLimit(b, o.slots);
        break;
      }
      case 'tick':
        now += o.ms;
        break;
    }
    const held = tickets.filter((t) => t.lease && !t.lease.released);
    assert.equal(pool.pool.inflight, held.length, 'the pool counts exactly the unreleased leases');
    for (const b of everyBackend) assert.equal(b.inflight, held.filter((t) => t.lease!.backend === b).length, `${b.pod} counts its own leases`);
    assert.equal(pool.queue.length, tickets.filter((t) => t.state === 'queued').length);
    for (const t of tickets) if (t.state === 'granted') assert.ok(t.lease && !t.lease.released);
    // One pod, one account: a pod never has two Backends both holding or taking work (that is how it got overfilled).
    for (let i = 0; i < PODS; i++) {
      const live = [...everyBackend].filter((b) => b.key === endpoint(i + 1).key && (b.inflight > 0 || pool.pool.get(b.key) === b));
      assert.ok(live.length <= 1, `pod ${i + 1} has ${live.length} accounts`);
    }
  }
  // Drain: release everything still held (and anything the releases grant), then nothing is left.
  for (let round = 0; round < 100 && tickets.some((t) => t.lease && !t.lease.released); round++) {
    for (const t of tickets) if (t.lease && !t.lease.released) t.lease.release('ok', 5);
  }
  for (const t of tickets) pool.cancel(t);
  assert.equal(pool.pool.inflight, 0);
  for (const b of everyBackend) assert.equal(b.inflight, 0, `${b.pod} back to zero`);
  assert.equal(pool.queue.length, 0);
}

for (const dispatch of ['greedy', 'earliest-completion'] as const) {
  test(`leases: every slot granted within its pod's limit and released exactly once (${dispatch})`, () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 80 }), (ops) => run(ops, dispatch)),
      { seed: dispatch === 'greedy' ? 1601 : 1602, numRuns: 200 },
    );
  });
}
