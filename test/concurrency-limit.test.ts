/**
 * The adaptive per-pod limiter (`slotsPerEndpoint: auto`) on a virtual clock: the real pool, queue and
 * limiter in front of simulated pods with K true slots, so every run is deterministic.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PodLimiter } from '../src/load/concurrency-limit.js';
import { burstArrivals, simulate } from '../bench/lib/ideal.js';
import { percentile, Sim, type SimOptions, type SimRequest } from './helpers/pod-sim.js';

/** Samples each pod's limit every 100 ms of virtual time while `clients` keep requests outstanding. */
function observe(sim: Sim, clients: number, durationMs: number): number[][] {
  const samples: number[][] = [];
  const end = sim.clock.now + durationMs;
  const tick = () => {
    samples.push(sim.slots);
    if (sim.clock.now + 100 < end) sim.clock.set(tick, 100);
  };
  sim.clock.set(tick, 100);
  sim.closedLoop(clients, durationMs);
  return samples;
}

/** The limit a pod held most of the time, and the highest it reached. */
function summary(samples: number[][], pod: number): { mode: number; max: number; share: number } {
  const counts = new Map<number, number>();
  for (const s of samples) counts.set(s[pod]!, (counts.get(s[pod]!) ?? 0) + 1);
  const [mode, n] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]!;
  return { mode, max: Math.max(...samples.map((s) => s[pod]!)), share: n / samples.length };
}

test('a new pod starts at minSlots (its slow start)', () => {
  assert.deepEqual(new Sim({ pods: [{ slots: 4, serviceMs: 200 }, { slots: 2, serviceMs: 200 }], slots: 'auto' }).slots, [1, 1]);
  assert.deepEqual(new Sim({ pods: [{ slots: 4, serviceMs: 200 }], slots: 'auto', limiter: { minSlots: 3 } }).slots, [3]);
});

test('each pod converges to its true slot count and holds there', () => {
  const sim = new Sim({ pods: [{ slots: 1, serviceMs: 200 }, { slots: 2, serviceMs: 200 }, { slots: 4, serviceMs: 200 }], slots: 'auto', limiter: { maxSlots: 8 } });
  observe(sim, 20, 10_000);
  const settled = observe(sim, 20, 20_000);
  [1, 2, 4].forEach((k, pod) => {
    const s = summary(settled, pod);
    assert.equal(s.mode, k, `pod with ${k} slots: held ${s.mode}`);
    assert.ok(s.share >= 0.8, `pod with ${k} slots held ${k} ${Math.round(s.share * 100)} % of the time`);
    assert.ok(s.max <= k + 1, `pod with ${k} slots probed no further than ${k + 1} (reached ${s.max})`);
  });
  // The learned service time is the pod's no-load latency.
  for (const b of sim.backends) assert.equal(Math.round(sim.limits!.serviceMs(b)), 200);
});

test('a pod whose service time triples loses slots within seconds and regains them when it recovers', () => {
  const sim = new Sim({ pods: [{ slots: 4, serviceMs: 200 }, { slots: 2, serviceMs: 200 }], slots: 'auto', limiter: { maxSlots: 8 } });
  const before = observe(sim, 16, 15_000);
  assert.equal(summary(before.slice(-50), 0).mode, 4);
  sim.pods[0]!.serviceMs = 600;
  const slow = observe(sim, 16, 3_000);
  assert.ok(Math.min(...slow.map((s) => s[0]!)) <= 2, `lost slots: ${slow.map((s) => s[0]).join(',')}`);
  sim.pods[0]!.serviceMs = 200;
  observe(sim, 16, 10_000);
  const after = observe(sim, 16, 10_000);
  assert.equal(summary(after, 0).mode, 4);
});

test('a pod that got slower for good is re-learned: its slots come back at its new speed', () => {
  const sim = new Sim({ pods: [{ slots: 2, serviceMs: 200 }, { slots: 2, serviceMs: 200 }], slots: 'auto', limiter: { maxSlots: 8 } });
  observe(sim, 10, 10_000);
  sim.pods[0]!.serviceMs = 600;
  observe(sim, 10, 20_000);
  const later = observe(sim, 10, 20_000);
  const slow = sim.backends[0]!;
  assert.equal(sim.limits!.provenSlots(slow), 2, 'runs its 2 slots again');
  // A third slot may stay open as a probe, unused: behind a 600 ms pod it never finishes a request first.
  assert.ok([2, 3].includes(summary(later, 0).mode), `held ${summary(later, 0).mode}`);
  assert.equal(Math.round(sim.limits!.serviceMs(slow)), 600);
});

test('limits stay within minSlots and maxSlots', () => {
  const big = new Sim({ pods: [{ slots: 8, serviceMs: 200 }], slots: 'auto', limiter: { maxSlots: 3 } });
  const capped = observe(big, 20, 10_000);
  assert.equal(Math.max(...capped.map((s) => s[0]!)), 3);
  assert.equal(capped.at(-1)![0], 3);
  const small = new Sim({ pods: [{ slots: 1, serviceMs: 200 }], slots: 'auto', limiter: { minSlots: 2, maxSlots: 4 } });
  const floored = observe(small, 10, 10_000);
  assert.equal(Math.min(...floored.map((s) => s[0]!)), 2);
});

test('cheap answers (GET /version) neither grow the limit nor teach a service time', () => {
  const limiter = new PodLimiter({ minSlots: 1, maxSlots: 16 }, 0);
  let now = 0;
  for (let i = 0; i < 500; i++) limiter.observe(2, limiter.limit, (now += 1));
  assert.equal(limiter.limit, 1);
  assert.equal(limiter.serviceMs, 0);
  // Real work is learned from its first answer; cheap answers in between change nothing.
  limiter.observe(300, 1, (now += 300));
  for (let i = 0; i < 20; i++) limiter.observe(3, 1, (now += 1));
  assert.equal(limiter.serviceMs, 300);
  assert.equal(limiter.baseMs, 300);
});

test('one slow outlier is not read as queueing; a run of them re-learns the pod', () => {
  const limiter = new PodLimiter({ minSlots: 1, maxSlots: 16 }, 0);
  let now = 0;
  // One full round: `limit` requests granted together, each answering after `latency` ms.
  const round = (latency: number) => {
    const n = limiter.limit;
    const members = Array.from({ length: n }, () => limiter.started(now));
    now += latency;
    for (const member of members) limiter.observe(latency, n, now, member);
    now += 1;
  };
  for (let i = 0; i < 6; i++) round(300);
  const grown = limiter.limit;
  assert.ok(grown >= 4, `grew on clean saturated rounds (to ${grown})`);
  limiter.observe(5000, 1, (now += 10));
  assert.equal(limiter.limit, grown);
  assert.equal(limiter.baseMs, 300);
  // The third in a row re-learns.
  for (let i = 0; i < 2; i++) limiter.observe(5000, 1, (now += 5000));
  assert.equal(limiter.baseMs, 5000);
  assert.equal(limiter.limit, 1, 're-learning starts the pod over at minSlots');
});

/** The `mixed` bench's cluster: 2- and 4-slot pods, normal and three times slower. */
const MIXED = [
  { slots: 4, serviceMs: 300 },
  { slots: 4, serviceMs: 900 },
  { slots: 2, serviceMs: 300 },
  { slots: 2, serviceMs: 900 },
];

/** `auto` on the mixed cluster after the bench's priming for it: two bursts of 4 s of the cluster's capacity. */
function primedAuto(noise?: SimOptions['noise']): Sim {
  const sim = new Sim({ pods: MIXED, slots: 'auto', ...(noise ? { noise } : {}) });
  const capacity = Math.ceil(4 * MIXED.reduce((sum, p) => sum + (p.slots * 1000) / p.serviceMs, 0));
  sim.burst(capacity);
  sim.burst(capacity);
  return sim;
}

const p95 = (requests: readonly SimRequest[]) => percentile(requests.map((r) => r.latencyMs), 95);

test('warmed up, auto slots on a cluster of mixed capacities schedule bursts as the ideal does with every true slot count', () => {
  const sim = primedAuto();
  assert.deepEqual(sim.backends.map((b) => sim.limits!.provenSlots(b)), [4, 4, 2, 2], 'learned every true slot count');
  for (const n of [10, 50, 100]) {
    const ideal = simulate('greedy', burstArrivals(n, 1000), MIXED).latenciesMs;
    const [ours, best] = [p95(sim.burst(n)), percentile(ideal, 95)];
    assert.ok(ours <= best * 1.02, `burst ${n}: p95 ${ours} ms, ideal ${best} ms`);
  }
});

test('with noisy service times auto proves no slot a pod lacks, and beats every single static slot count', () => {
  // 3 % service-time noise: a request timed to start as a proven slot frees answers unqueued whatever
  // the pod has; counted by its in-flight count at the grant it proved a 5th slot on the 4-slot weak pod.
  for (let seed = 1; seed <= 10; seed++) {
    const noise = { share: 0.03, extraMs: 2, seed };
    const auto = primedAuto(noise);
    assert.deepEqual(auto.backends.map((b) => auto.limits!.provenSlots(b)), [4, 4, 2, 2], `seed ${seed}: primed, learned every true slot count`);
    // HAProxy `leastconn` + `maxconn` 1-4 is the greedy central queue with one static slot count for every pod.
    const statics = [1, 2, 3, 4].map((slots) => new Sim({ pods: MIXED, slots, noise }));
    for (const sim of statics) sim.burst(24);
    for (const n of [10, 50, 100]) {
      const ours = p95(auto.burst(n));
      const best = Math.min(...statics.map((sim) => p95(sim.burst(n))));
      assert.ok(ours < best, `seed ${seed}, burst ${n}: auto p95 ${ours} ms, best static ${best} ms`);
    }
    assert.deepEqual(auto.backends.map((b) => auto.limits!.provenSlots(b)), [4, 4, 2, 2], `seed ${seed}: and kept them through the bursts`);
  }
});

test('a round is judged on every request granted in it, not on the first to answer', () => {
  const limiter = new PodLimiter({ minSlots: 1, maxSlots: 16 }, 0);
  let now = 0;
  while (limiter.limit < 5) {
    const members = Array.from({ length: limiter.limit }, () => limiter.started(now));
    now += 600;
    for (const member of members) limiter.observe(600, members.length, now, member);
    now += 1;
  }
  const proven = limiter.proven;
  assert.equal(limiter.limit, 5);
  assert.ok(proven < 5);
  // A 4-slot pod tried at 5: four answer in 600 ms; the fifth waits inside the pod until 1200 ms.
  const start = now;
  const members = Array.from({ length: 5 }, () => limiter.started(start));
  for (const member of members.slice(0, 4)) limiter.observe(600, 5, start + 600, member);
  // A request granted after the round filled answers before the fifth: it is no sample of this round.
  assert.equal(limiter.started(start + 600), 0);
  limiter.observe(600, 5, start + 1200, 0);
  assert.equal(limiter.limit, 5, 'not judged before its queued member answers');
  assert.equal(limiter.proven, proven, 'the four quick answers prove nothing');
  limiter.observe(1200, 5, start + 1200, members[4]);
  assert.equal(limiter.limit, 4, 'the queued fifth shrinks the limit to what the pod ran');
});
