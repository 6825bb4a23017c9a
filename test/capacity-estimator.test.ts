/**
 * The live capacity estimator (src/capacity/pool-capacity.ts) on a real Pool with an injected clock:
 * the per-second sliding window, service times from lease outcomes only, route classes mixed by
 * rate, the slots it models, scale from zero (anything waiting asks for a pod), and the metric
 * `gateway_pool_desired_pods` read at scrape time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TicketQueue } from '../src/admission/ticket-queue.js';
import { PoolCapacity, SERVICE_WINDOWS } from '../src/capacity/pool-capacity.js';
import { SlidingWindow } from '../src/capacity/sliding-window.js';
import { GatewayMetrics } from '../src/metrics/metrics.js';
import { admissionFor, endpoint, RecordingTicket, seeded } from './helpers/tickets.js';
import { metricValue } from './helpers/harness.js';

const config = { targetQueueWaitMs: 500, horizonMs: 60_000, windowMs: 10_000 };

class ClassTicket extends RecordingTicket {
  constructor(readonly routeClass: string) {
    super(routeClass);
  }
}

function setup(pods: number, slots: number | 'unlimited' | 'auto' = 2) {
  const clock = { now: 100_000 };
  const pool = admissionFor({
    name: 'nlu',
    balancer: 'least-outstanding',
    slotsPerEndpoint: slots === 'unlimited' ? Infinity : slots === 'auto' ? 1 : slots,
    adaptive: slots === 'auto',
    queue: { maxLength: 100, maxWaitMs: 600_000 },
    now: () => clock.now,
    random: seeded(),
  });
  pool.pool.update(Array.from({ length: pods }, (_, i) => endpoint(i + 1)));
  const capacity = new PoolCapacity(pool, config, { classOf: (t) => (t instanceof ClassTicket ? t.routeClass : 'other') });
  /** One request of `routeClass` arriving now and answered after `serviceMs`. */
  const serve = (routeClass: string, serviceMs: number, outcome: 'ok' | 'pod-error' = 'ok') => {
    const t = new ClassTicket(routeClass);
    capacity.arrived(routeClass);
    pool.admit(t);
    assert.equal(t.state, 'granted');
    clock.now += serviceMs;
    pool.release(t, outcome, serviceMs);
    clock.now -= serviceMs;
  };
  return { clock, pool, capacity, serve };
}

test('the sliding window counts the last windowMs in per-second buckets and forgets older ones', () => {
  const w = new SlidingWindow(5000, 0);
  w.add(100, 2);
  w.add(1100, 4);
  assert.deepEqual(w.totals(1500), { count: 2, sum: 6, sumSq: 20, spanMs: 1500 }, 'while filling, the span is the time since the start');
  w.add(4900, 1);
  assert.equal(w.totals(5999).count, 3);
  assert.equal(w.totals(6000).count, 2, 'the bucket of second 0 left the window');
  assert.equal(w.totals(6000).spanMs, 5000, 'five whole seconds and the start of the sixth');
  assert.equal(w.totals(6999).spanMs, 5999, 'never less than the window, never a sliver of a second');
  const short = new SlidingWindow(1000, 0);
  short.add(4999);
  short.add(5001);
  assert.equal(short.totals(5002).spanMs, 1002, 'a one-second window still spans a whole second');
  assert.equal(w.totals(20_000).count, 0, 'everything expires');
  w.add(20_100, 3);
  assert.equal(w.totals(20_200).sum, 3, 'a reused bucket starts from zero');
});

test('rate and service time come from arrivals and answered leases; failures do not make pods look fast', () => {
  const { clock, capacity, serve } = setup(4);
  for (let i = 0; i < 20; i++) {
    serve('model', i % 2 === 0 ? 300 : 500);
    clock.now += 250;
  }
  serve('model', 5, 'pod-error');
  const s = capacity.snapshot();
  assert.ok(Math.abs(s.ratePerS - 21 / (20 * 0.25)) < 1e-9, `21 arrivals over 5 s: ${s.ratePerS}`);
  assert.equal(s.service?.meanMs, 400, 'the failed attempt is not a service time');
  assert.ok(Math.abs((s.service?.cv ?? 0) - 0.25) < 1e-9);
  assert.equal(s.slots, 2);
  assert.equal(s.currentPods, 4);
  assert.ok(s.desiredPods !== null && s.desiredPods >= 1 && s.desiredPods <= 4);
  assert.ok(s.expectedP95Ms !== null && s.expectedP95Ms >= 500, 'p95 is at least the slower half of the service times');
});

test('route classes are kept apart and mixed by their rates', () => {
  const { clock, capacity, serve } = setup(4);
  for (let i = 0; i < 30; i++) {
    serve('model', 40);
    if (i % 3 === 0) serve('webhook', 2000);
    clock.now += 100;
  }
  const s = capacity.snapshot();
  const byName = new Map(s.classes.map((c) => [c.name, c]));
  assert.equal(byName.get('model')?.meanMs, 40);
  assert.equal(byName.get('webhook')?.meanMs, 2000);
  assert.ok(Math.abs(s.ratePerS - 40 / 3) < 1e-9, `30 + 10 arrivals over 3 s: ${s.ratePerS}`);
  // A quarter of the requests take 2 s: the pool's mean is 0.75 x 40 + 0.25 x 2000 ms.
  assert.ok(Math.abs((s.service?.meanMs ?? 0) - 530) < 1e-9, `mixed mean ${s.service?.meanMs}`);
  assert.ok((s.service?.cv ?? 0) > 1.5, 'the mixture is much wider than either class');
});

test('scale from zero: with no pod and nothing measured, a waiting request still asks for one pod', () => {
  const { pool, capacity } = setup(0);
  assert.equal(capacity.snapshot().desiredPods, 0, 'nothing waiting, nothing measured: no pods');
  // A request waiting in the pool's queue (here for its conversation's turn, which needs no pod to queue).
  const waiting = new RecordingTicket();
  pool.queue.park(waiting, new TicketQueue());
  assert.equal(pool.queue.length, 1);
  const s = capacity.snapshot();
  pool.cancel(waiting);
  assert.equal(s.currentPods, 0);
  assert.equal(s.desiredPods, 1);
});

test('scale from zero after traffic: the measured service time sizes the backlog once pods are gone', () => {
  const { clock, pool, capacity, serve } = setup(2);
  for (let i = 0; i < 10; i++) {
    serve('model', 500);
    clock.now += 1000;
  }
  clock.now += config.windowMs * SERVICE_WINDOWS * 2;
  pool.pool.update([]);
  assert.equal(capacity.snapshot().desiredPods, 0, 'idle and empty: zero');
  const waiting = Array.from({ length: 3 }, () => new RecordingTicket());
  for (const t of waiting) pool.queue.park(t, new TicketQueue());
  const s = capacity.snapshot();
  for (const t of waiting) pool.cancel(t);
  assert.equal(s.service?.meanMs, 500, 'the last measured service time is kept when the window is empty');
  assert.equal(s.desiredPods, 1);
});

test('slots: the configured number, the mean of the learned ones with auto, none with unlimited', () => {
  const auto = setup(2, 'auto');
  const [a, b] = [...auto.pool.pool.backends];
  auto.pool.pool.setLimit(a!, 2);
  auto.pool.pool.setLimit(b!, 4);
  assert.equal(auto.capacity.snapshot().slots, 3);
  const unlimited = setup(2, 'unlimited');
  unlimited.serve('model', 100);
  const s = unlimited.capacity.snapshot();
  assert.equal(s.slots, null);
  assert.equal(s.desiredPods, null, 'no slot count, no model');
});

test('gateway_pool_desired_pods is computed at scrape time, per pool, and absent for unlimited pools', async () => {
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const busy = setup(1);
  const unlimited = setup(1, 'unlimited');
  metrics.addCapacity('nlu', busy.capacity);
  metrics.addCapacity('free', unlimited.capacity);
  const before = metricValue(await metrics.registry.metrics(), 'gateway_pool_desired_pods', { pool: 'nlu' });
  assert.equal(before, 0);
  for (let i = 0; i < 100; i++) {
    busy.serve('model', 500);
    busy.clock.now += 50;
  }
  const text = await metrics.registry.metrics();
  const after = metricValue(text, 'gateway_pool_desired_pods', { pool: 'nlu' });
  const expected = busy.capacity.snapshot().desiredPods;
  assert.equal(after, expected);
  assert.ok(after !== undefined && after >= 6, `20 req/s x 0.5 s on 2-slot pods needs more than 5 pods: ${after}`);
  assert.equal(metricValue(text, 'gateway_pool_desired_pods', { pool: 'free' }), undefined);
});
