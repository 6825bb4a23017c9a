import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BalancerName } from '../src/balancer/types.js';
import { admissionFor, endpoint, RecordingTicket, seeded } from './helpers/tickets.js';

function pool(slots: number, n: number, balancer: BalancerName = 'least-outstanding', queue = { maxLength: 100, maxWaitMs: 60_000 }) {
  let now = 1000;
  const p = admissionFor({ name: 't', balancer, slotsPerEndpoint: slots, queue, now: () => now, random: seeded() });
  p.pool.update(Array.from({ length: n }, (_, i) => endpoint(i + 1)));
  return { pool: p, advance: (ms: number) => (now += ms) };
}

test('grants free slots at once and queues the rest in arrival order', () => {
  const { pool: p } = pool(1, 2);
  const tickets = Array.from({ length: 5 }, (_, i) => new RecordingTicket(`t${i}`));
  for (const t of tickets) p.admit(t);
  assert.deepEqual(tickets.map((t) => t.state), ['granted', 'granted', 'queued', 'queued', 'queued']);
  assert.equal(p.queue.length, 3);
  assert.notEqual(tickets[0]!.granted, tickets[1]!.granted);
  // Whichever pod frees a slot takes the head of the queue.
  p.release(tickets[1]!, 'ok');
  assert.equal(tickets[2]!.state, 'granted');
  assert.equal(tickets[2]!.granted, tickets[1]!.granted);
  p.release(tickets[0]!, 'ok');
  assert.equal(tickets[3]!.granted, tickets[0]!.granted);
  assert.equal(tickets[4]!.state, 'queued');
  for (const t of tickets) p.release(t, 'ok');
  p.release(tickets[4]!, 'ok');
  assert.equal(p.pool.inflight, 0);
  assert.equal(p.queue.length, 0);
});

test('release is idempotent and a cancelled ticket never gets a slot', () => {
  const { pool: p } = pool(1, 1);
  const a = new RecordingTicket();
  const b = new RecordingTicket();
  p.admit(a);
  p.admit(b);
  p.cancel(b);
  assert.equal(p.queue.length, 0);
  p.release(a, 'ok');
  p.release(a, 'ok');
  assert.equal(p.pool.inflight, 0);
  assert.equal(b.granted, undefined);
  assert.equal([...p.pool.backends][0]!.inflight, 0);
});

test('queue overflow and no endpoints are rejected synchronously with their codes', () => {
  const { pool: p } = pool(1, 1, 'least-outstanding', { maxLength: 1, maxWaitMs: 1000 });
  const tickets = [new RecordingTicket(), new RecordingTicket(), new RecordingTicket()];
  for (const t of tickets) p.admit(t);
  assert.equal(tickets[2]!.error?.code, 'QUEUE_FULL');
  p.pool.update([]);
  assert.equal(tickets[1]!.error?.code, 'NO_ENDPOINTS', 'waiters are told at once when the last pod goes');
  const late = new RecordingTicket();
  p.admit(late);
  assert.equal(late.error?.code, 'NO_ENDPOINTS');
});

test('least-outstanding spreads over the emptiest pods; unlimited slots never queue', () => {
  const { pool: p } = pool(Infinity, 3);
  const tickets = Array.from({ length: 9 }, () => new RecordingTicket());
  for (const t of tickets) p.admit(t);
  assert.ok(tickets.every((t) => t.state === 'granted'));
  assert.deepEqual([...p.pool.backends].map((b) => b.inflight), [3, 3, 3]);
});

test('a sticky request waits for its own pod even when another pod is free', () => {
  const { pool: p } = pool(1, 2);
  const [a, b] = [...p.pool.backends];
  const busy = new RecordingTicket();
  busy.target = a;
  p.admit(busy);
  const sticky = new RecordingTicket();
  sticky.target = a;
  p.admit(sticky);
  assert.equal(sticky.state, 'queued');
  assert.equal(b!.inflight, 0);
  p.release(busy, 'ok');
  assert.equal(sticky.granted, a);
});

test('a freed slot goes to the older of the pod queue head and the general queue head', () => {
  const { pool: p } = pool(1, 1);
  const [a] = [...p.pool.backends];
  const holder = new RecordingTicket();
  p.admit(holder);
  const general = new RecordingTicket('general');
  p.admit(general);
  const pinned = new RecordingTicket('pinned');
  pinned.target = a;
  p.admit(pinned);
  p.release(holder, 'ok');
  assert.equal(general.state, 'granted');
  p.release(general, 'ok');
  assert.equal(pinned.state, 'granted');
});

test('draining pods keep sticky work but take no new work; gone pods hand pinned waiters on', () => {
  const { pool: p } = pool(1, 2);
  const [a, b] = [...p.pool.backends];
  p.pool.update([endpoint(1, { ready: false, serving: true, terminating: true }), endpoint(2)]);
  assert.equal(a!.state, 'draining');
  const fresh = new RecordingTicket();
  p.admit(fresh);
  assert.equal(fresh.granted, b);
  const sticky = new RecordingTicket();
  sticky.target = a;
  p.admit(sticky);
  assert.equal(sticky.granted, a, 'a draining pod still serves its conversations');
  const waiting = new RecordingTicket();
  waiting.target = a;
  waiting.repinTo = b;
  p.admit(waiting);
  assert.equal(waiting.state, 'queued');
  p.pool.update([endpoint(2)]);
  assert.equal(a!.state, 'gone');
  assert.equal(waiting.state, 'queued', 'b is busy: the waiter moved to b and waits there');
  p.release(fresh, 'ok');
  assert.equal(waiting.granted, b);
  p.release(sticky, 'ok');
  assert.equal(a!.inflight, 0, 'requests on a removed pod still release their slot');
});

test('queued tickets time out with QUEUE_TIMEOUT, or DEADLINE_EXCEEDED when their deadline is sooner', async () => {
  const p = admissionFor({ name: 't', balancer: 'round-robin', slotsPerEndpoint: 1, queue: { maxLength: 10, maxWaitMs: 30 } });
  p.pool.update([endpoint(1)]);
  const holder = new RecordingTicket();
  p.admit(holder);
  const waits = new RecordingTicket();
  p.admit(waits);
  const hurried = new RecordingTicket();
  hurried.deadlineMs = p.pool.now() + 5;
  p.admit(hurried);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(waits.error?.code, 'QUEUE_TIMEOUT');
  assert.equal(hurried.error?.code, 'DEADLINE_EXCEEDED');
  assert.equal(p.queue.length, 0);
});
