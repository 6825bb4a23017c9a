import assert from 'node:assert/strict';
import { test } from 'node:test';
import { balancerNames } from '../src/config-schema.js';
import type { Admission } from '../src/admission/admission.js';
import type { BalancerName } from '../src/balancer/types.js';
import { admissionFor, endpoint, RecordingTicket, seeded } from './helpers/tickets.js';

function makePool(balancer: BalancerName, n: number) {
  let now = 0;
  const p = admissionFor({ name: 'b', balancer, slotsPerEndpoint: Infinity, queue: { maxLength: 10, maxWaitMs: 1000 }, now: () => now, random: seeded(7) });
  p.pool.update(Array.from({ length: n }, (_, i) => endpoint(i + 1)));
  return { p, tick: (ms: number) => (now += ms) };
}

function pickOnce(p: Admission): RecordingTicket {
  const t = new RecordingTicket();
  p.admit(t);
  return t;
}

test('every registered balancer picks a pod and spreads load over all of them', () => {
  for (const name of balancerNames) {
    const { p } = makePool(name, 4);
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const t = pickOnce(p);
      counts.set(t.granted!.key, (counts.get(t.granted!.key) ?? 0) + 1);
      p.release(t, 'ok', 10);
    }
    assert.equal(counts.size, 4, `${name} used every pod`);
  }
});

test('round-robin cycles through the pods in order', () => {
  const { p } = makePool('round-robin', 3);
  const seen = Array.from({ length: 6 }, () => {
    const t = pickOnce(p);
    p.release(t, 'ok');
    return t.granted!.pod;
  });
  assert.deepEqual(seen.slice(0, 3).sort(), ['rasa-1', 'rasa-2', 'rasa-3']);
  assert.deepEqual(seen.slice(3), seen.slice(0, 3));
});

test('least-outstanding always picks a pod with the fewest in flight', () => {
  const { p } = makePool('least-outstanding', 5);
  const held: RecordingTicket[] = [];
  for (let i = 0; i < 23; i++) {
    const min = Math.min(...[...p.pool.backends].map((b) => b.inflight));
    const t = pickOnce(p);
    assert.equal(t.granted!.inflight - 1, min);
    held.push(t);
    if (i % 3 === 2) p.release(held.splice(i % held.length, 1)[0]!, 'ok');
  }
});

test('p2c never picks the busier of the two pods it sampled, so the busiest pod starves', () => {
  const { p } = makePool('p2c', 2);
  const [a] = [...p.pool.backends];
  for (let i = 0; i < 5; i++) {
    const t = new RecordingTicket();
    t.target = a;
    p.admit(t);
  }
  for (let i = 0; i < 20; i++) {
    const t = pickOnce(p);
    assert.notEqual(t.granted, a);
    p.release(t, 'ok');
  }
});

test('peak-ewma steers away from a pod whose latency spiked', () => {
  const { p, tick } = makePool('peak-ewma', 3);
  const backends = [...p.pool.backends];
  // Teach it: pod 1 answers in 900 ms, the others in 100 ms.
  for (const b of backends) {
    const t = new RecordingTicket();
    t.target = b;
    p.admit(t);
    tick(1);
    p.release(t, 'ok', b === backends[0] ? 900 : 100);
  }
  let slowPicks = 0;
  for (let i = 0; i < 300; i++) {
    const t = pickOnce(p);
    if (t.granted === backends[0]) slowPicks++;
    p.release(t, 'ok', t.granted === backends[0] ? 900 : 100);
  }
  assert.equal(slowPicks, 0, 'with p2c over latency x (in flight + 1), the 9x slower pod always loses its comparison');
});

test('a new pod starts at the pool average latency, not at zero', () => {
  const { p, tick } = makePool('peak-ewma', 2);
  for (const b of [...p.pool.backends]) {
    const t = new RecordingTicket();
    t.target = b;
    p.admit(t);
    tick(1);
    p.release(t, 'ok', 400);
  }
  p.pool.update([endpoint(1), endpoint(2), endpoint(3)]);
  const fresh = p.pool.get(endpoint(3).key)!;
  assert.equal(fresh.latency.valueMs, 400);
});

test('peak-ewma reads its estimate decayed to now: a pod slow once and then left without samples is tried again', () => {
  const { p, tick } = makePool('peak-ewma', 2);
  const [slow, fast] = [...p.pool.backends];
  const answer = (b: typeof slow, ms: number | undefined) => {
    const t = new RecordingTicket();
    t.target = b;
    p.admit(t);
    p.release(t, 'ok', ms);
  };
  answer(slow, 2000);
  answer(fast, 100);
  /** Unpinned picks; the fast pod keeps answering in 100 ms, so its estimate stays fresh. */
  const slowPicks = () => {
    let n = 0;
    for (let i = 0; i < 50; i++) {
      const t = pickOnce(p);
      if (t.granted === slow) n++;
      p.release(t, 'ok', t.granted === slow ? undefined : 100);
    }
    return n;
  };
  assert.equal(slowPicks(), 0, 'right after its slow answer the slow pod loses every comparison');
  for (let s = 0; s < 60; s++) {
    tick(1000);
    answer(fast!, 100);
  }
  assert.equal(slow!.latency.valueMs, 2000, 'reading does not change the stored estimate');
  assert.ok(slow!.latency.valueAt(60_000) < 100, 'its read estimate decayed below the fast pod\'s');
  assert.ok(slowPicks() > 0, 'so it gets work again, and with it the sample that clears it');
});
