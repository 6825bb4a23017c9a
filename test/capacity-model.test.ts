/**
 * The capacity model (src/capacity/) against the discrete-event simulation of the real pool
 * (test/helpers/pod-sim.ts: the Pool, its central queue and pods of K slots on a virtual clock), over
 * the study's rates (1, 10, 50, 100 req/s) and its pod (2 slots, 0.3-0.6 s per request): the pods the
 * model asks for agree with the pods the simulation needs within one, both from the formulas and from
 * the live estimator listening to the simulated pool. Poisson arrivals from a seeded generator, so
 * every run is the same.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { erlangC } from '../src/capacity/erlang-c.js';
import { normalQuantile } from '../src/capacity/normal-quantile.js';
import { PoolCapacity } from '../src/capacity/pool-capacity.js';
import { desiredPods, latencyQuantileMs, podsForWait, predict, waitQuantileMs } from '../src/capacity/queue-model.js';
import { fromMoments, fromSamples, mixture } from '../src/capacity/service-time.js';
import { percentile, Sim, type SimRequest } from './helpers/pod-sim.js';
import { seeded } from './helpers/tickets.js';

/** The study's pod: 2 slots, each request 0.3-0.6 s (uniform: 450 ms +- 1/3). */
const STUDY = { slots: 2, serviceMs: 450, share: 1 / 3 };
const STUDY_CV = (STUDY.serviceMs * 2 * STUDY.share) / Math.sqrt(12) / STUDY.serviceMs;
const RATES = [1, 10, 50, 100];
const TARGET_WAIT_MS = 500;
const ARRIVALS = 20_000;

interface Run {
  readonly sim: Sim;
  readonly requests: SimRequest[];
}

/** Hooks of a run: called at each arrival and once after the last one. */
interface Observer {
  arrived(): void;
  lastArrival(): void;
}

/**
 * Poisson arrivals at `ratePerS` on `pods` study pods; each arrival schedules the next, so the event
 * list stays short. `observe` is attached to the pool before the first arrival.
 */
function poissonRun(ratePerS: number, pods: number, seed: number, observe?: (sim: Sim) => Observer): Run {
  const sim = new Sim({
    pods: Array.from({ length: pods }, () => ({ slots: STUDY.slots, serviceMs: STUDY.serviceMs })),
    slots: STUDY.slots,
    noise: { share: STUDY.share, extraMs: 0, seed },
  });
  const observer = observe?.(sim);
  const random = seeded(seed + 1000);
  const requests: SimRequest[] = [];
  let left = ARRIVALS;
  const next = () => {
    if (left-- <= 0) {
      observer?.lastArrival();
      return;
    }
    observer?.arrived();
    sim.send(sim.clock.now, requests);
    sim.clock.set(next, (-Math.log(1 - random()) / ratePerS) * 1000);
  };
  next();
  sim.drain();
  return { sim, requests };
}

/** p95 queue wait of a run, after the first 10 % (the queue starting empty). */
function p95Wait(run: Run): number {
  const steady = run.requests.slice(Math.floor(run.requests.length / 10));
  return percentile(steady.map((r) => r.grantedAtMs - r.arrivalMs), 95);
}

function p95Latency(run: Run): number {
  const steady = run.requests.slice(Math.floor(run.requests.length / 10));
  return percentile(steady.map((r) => r.latencyMs), 95);
}

/** The fewest simulated pods whose p95 wait meets the target (fewer than the bare load never keep up). */
function simulatedPods(ratePerS: number): { pods: number; run: Run } {
  const bare = (ratePerS * STUDY.serviceMs) / 1000 / STUDY.slots;
  for (let pods = Math.max(1, Math.ceil(bare)); ; pods++) {
    const run = poissonRun(ratePerS, pods, 7 + pods);
    if (p95Wait(run) <= TARGET_WAIT_MS) return { pods, run };
  }
}

const profile = { service: fromMoments(STUDY.serviceMs, STUDY_CV), slots: STUDY.slots };
const simulated = new Map(RATES.map((rate) => [rate, simulatedPods(rate)]));

test('Erlang C and the normal quantile match known values', () => {
  assert.ok(Math.abs(erlangC(1, 0.5) - 0.5) < 1e-12, 'M/M/1: P(wait) = utilisation');
  assert.ok(Math.abs(erlangC(2, 1) - 1 / 3) < 1e-12, 'M/M/2 at a = 1: 1/3');
  assert.equal(erlangC(4, 4), 1, 'overloaded: everyone waits');
  assert.equal(erlangC(4, 0), 0);
  assert.ok(erlangC(5000, 4900) > 0 && erlangC(5000, 4900) < 1, 'no overflow with thousands of servers');
  assert.ok(Math.abs(normalQuantile(0.975) - 1.959964) < 1e-6);
  assert.ok(Math.abs(normalQuantile(0.001) + 3.090232) < 1e-5);
  assert.equal(normalQuantile(0.5), 0);
});

test('service-time distributions keep their moments: lognormal points, samples, mixtures', () => {
  const lognormal = fromMoments(500, 0.4);
  const mean = lognormal.points.reduce((s, x) => s + x.p * x.ms, 0);
  assert.ok(Math.abs(mean / 500 - 1) < 0.02, `the points' mean ${mean} is the mean`);
  assert.deepEqual(fromMoments(300, 0).points, [{ ms: 300, p: 1 }], 'cv 0 is a constant');
  const samples = fromSamples([100, 200, 300, 400]);
  assert.equal(samples.meanMs, 250);
  assert.ok(Math.abs(samples.cv - Math.sqrt(12500) / 250) < 1e-12);
  const mixed = mixture([
    { weight: 3, service: fromMoments(40, 0) },
    { weight: 1, service: fromMoments(2000, 0) },
  ]);
  assert.equal(mixed.meanMs, 530, 'rate-weighted mean');
  assert.ok(mixed.cv > 1.5, `two constant classes make a wide mixture (cv ${mixed.cv})`);
  assert.equal(mixed.points.reduce((s, x) => s + x.p, 0), 1);
});

test('the model: more pods never wait longer, overload has no finite wait, the backlog adds pods', () => {
  let previous = Infinity;
  for (let pods = 12; pods <= 20; pods++) {
    const wait = waitQuantileMs(predict(50, profile, pods), 0.95);
    assert.ok(wait <= previous, `${pods} pods wait no longer than ${pods - 1}`);
    previous = wait;
  }
  assert.equal(predict(100, profile, 20).stable, false, '100 req/s x 0.45 s needs more than 40 slots');
  assert.equal(latencyQuantileMs(100, profile, 20, 0.95), Infinity);
  const idle = desiredPods({ ratePerS: 0, profile, queueLength: 0, targetWaitMs: 500, horizonMs: 60_000 });
  assert.equal(idle.pods, 0, 'no traffic, no pods');
  const waiting = desiredPods({ ratePerS: 0, profile, queueLength: 3, targetWaitMs: 500, horizonMs: 60_000 });
  assert.equal(waiting.pods, 1, 'scale from zero: anything waiting asks for a pod');
  const calm = desiredPods({ ratePerS: 50, profile, queueLength: 0, targetWaitMs: 500, horizonMs: 60_000 });
  const backlog = desiredPods({ ratePerS: 50, profile, queueLength: 6000, targetWaitMs: 500, horizonMs: 60_000 });
  assert.equal(calm.pods, calm.forWait);
  // 6000 queued x 0.45 s / (2 slots x 60 s) = 22.5 pods of drain on top of 11.25 pods of bare load.
  assert.ok(Math.abs(backlog.pods - (11.25 + (backlog.excessBacklog * 0.45) / 120)) < 1e-9, `backlog answer ${backlog.pods}`);
  assert.ok(backlog.pods > calm.pods + 20);
});

for (const rate of RATES) {
  test(`at ${rate} req/s the model's desired pods are within one of the simulation's`, (t) => {
    const sim = simulated.get(rate)!;
    const model = podsForWait(rate, profile, TARGET_WAIT_MS);
    assert.ok(Math.abs(model - sim.pods) <= 1, `model ${model} pods, simulation ${sim.pods} pods (p95 wait ${p95Wait(sim.run).toFixed(0)} ms)`);
    t.diagnostic(`${rate} req/s: model ${model} pods, simulation ${sim.pods}`);
    const expected = latencyQuantileMs(rate, profile, sim.pods, 0.95);
    const measured = p95Latency(sim.run);
    assert.ok(Math.abs(expected / measured - 1) < 0.15, `p95 latency at ${sim.pods} pods: model ${expected.toFixed(0)} ms, simulation ${measured.toFixed(0)} ms`);
  });
}

test('the live estimator on the simulated pool measures the rate and service time and asks for the simulated pod count', () => {
  for (const rate of RATES) {
    const { pods } = simulated.get(rate)!;
    let capacity: PoolCapacity | undefined;
    let atEnd: ReturnType<PoolCapacity['snapshot']> | undefined;
    poissonRun(rate, pods, 99, (sim) => {
      const live = (capacity = new PoolCapacity(sim.admission, { targetQueueWaitMs: TARGET_WAIT_MS, horizonMs: 60_000, windowMs: 30_000 }));
      return { arrived: () => live.arrived(), lastArrival: () => (atEnd = live.snapshot()) };
    });
    assert.ok(capacity && atEnd);
    assert.ok(Math.abs(atEnd.ratePerS / rate - 1) < 0.25, `${rate} req/s measured as ${atEnd.ratePerS.toFixed(2)}`);
    assert.ok(atEnd.service && Math.abs(atEnd.service.meanMs / STUDY.serviceMs - 1) < 0.05, `service ${atEnd.service?.meanMs.toFixed(0)} ms`);
    assert.ok(atEnd.service && Math.abs(atEnd.service.cv - STUDY_CV) < 0.05, `cv ${atEnd.service?.cv.toFixed(3)} (uniform: ${STUDY_CV.toFixed(3)})`);
    assert.equal(atEnd.slots, STUDY.slots);
    assert.equal(atEnd.currentPods, pods);
    assert.ok(atEnd.desiredPods !== null && Math.abs(Math.ceil(atEnd.desiredPods) - pods) <= 1, `at ${rate} req/s: live estimate ${atEnd.desiredPods} pods, simulation ${pods}`);
  }
});
