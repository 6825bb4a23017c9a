/**
 * Completion-aware dispatch (issue 9): a request goes to the slot that finishes it first, by each pod's
 * learned service time, not to the first slot that is free. The greedy central queue (HAProxy `maxconn`
 * + queue) hands a free slot on a pod three times slower to the head of the queue even when a fast pod
 * frees a slot in a moment; at light load it sends some requests to the slow pod although fast slots are
 * free. This is the earliest-completion schedule of bench/lib/ideal.ts, run online: at every event
 * (arrival, slot freed, limit or state change, wake-up) the queue is planned in arrival order, each
 * waiter taking the slot with the earliest expected completion, reserving it; waiters whose best slot
 * is free now are granted, the others stay queued (a later waiter may take a slow free slot if no
 * faster one can finish it sooner). A free slot is left idle only while a faster pod is expected to
 * finish the request sooner.
 *
 * Predictions: a pod runs its proven slots in parallel (a probe slot above them queues inside; while
 * the pod is in slow start, one of them counts as a server on trial), each request for the pod's
 * service time. A request running longer than that raises the pod's estimate to
 * its age (the pod is at least that slow now) and is predicted to end as far ahead as it is late, so a
 * hung or mis-estimated pod loses its claim: a waiter held for it moves to a free slot after about half
 * the free slot's service time at most, and a wake-up timer re-plans when no event comes. An ejected, draining or removed pod drops out of the plan at once. Held waiters are ordinary
 * queued tickets: max wait, deadline and client abort apply unchanged.
 *
 * Cost: O(1) when no pod has room (most events under a backlog); otherwise O(pods x slots) to build
 * the plan plus O(log pods) per waiter walked (a heap by expected completion), the walk bounded by
 * MAX_WALK. Building is a scan, not an incremental index, on purpose: predictions move with the clock,
 * a Rasa pool has a handful to a few dozen pods (each several GB), and that is a few microseconds
 * against the proxy's ~50 us per request. Static-slot pools never run any of this.
 */
import type { Backend } from '../pool/backend.js';
import type { Candidates } from '../balancer/types.js';
import type { Ticket } from './ticket.js';
import { TicketQueue } from './ticket-queue.js';
import type { Dispatcher, Timers } from './central-queue.js';

export interface CompletionSource {
  /** Every pod of the pool, whatever its state. */
  backends(): Iterable<Backend>;
  /** Whether any pod that takes new work has room for one more request (O(1)). */
  hasRoom(): boolean;
  /** The pool's balancer, for pods whose expected completions tie. */
  pick(candidates: Candidates): Backend | undefined;
  now(): number;
  readonly timers: Timers;
}

/**
 * What the plan knows of each pod's speed, kept by whoever learns it (the adaptive limiter): the pod
 * data belongs to that policy, not to the Backend.
 */
export interface ServiceProfile {
  /** Learned service time (ms) of a request on the pod when it does not queue inside it; 0: not learned. */
  serviceMs(backend: Backend): number;
  /** Slots the pod is expected to run in parallel (proven ones plus one on trial); more queue inside it. */
  parallelSlots(backend: Backend): number;
}

const UNLEARNED: ServiceProfile = { serviceMs: () => 0, parallelSlots: () => Infinity };

/** Completions within this share of a service time of the best count as equal (estimates are noisy). */
const TIE = 0.1;
/** Most waiters planned per event; past it, free slots go to the next waiters in order. */
const MAX_WALK = 256;
/** Shortest wake-up delay, so a timer never spins. */
const MIN_WAKE_MS = 5;
/** Service time assumed when no pod of the pool has one yet. */
const DEFAULT_SERVICE_MS = 100;

/** One pod as the plan sees it (one per pod, reused by every plan: planning allocates nothing). */
interface PodPlan {
  readonly backend: Backend;
  /** In-flight requests, oldest grant first (intrusive list: O(1) add and remove). */
  readonly running: TicketQueue;
  serviceMs: number;
  /** Requests it may still be sent now (limit - in flight). */
  admit: number;
  /** When a request given to it next would be done (the heap key while planning). */
  done: number;
  /** Position in the planning heap. */
  index: number;
  /** When each of its servers (proven slots) is next free, ascending; may be `now`. */
  readonly servers: number[];
}

export class EarliestCompletion implements Dispatcher {
  private readonly pods = new WeakMap<Backend, PodPlan>();
  private readonly plans: PodPlan[] = [];
  private readonly scratch = new ScratchCandidates();
  private readonly stack: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private wakeAtMs = Infinity;
  /** Set while planning: a grant's callback that admits or releases re-plans after, not inside. */
  private planning = false;
  private again = false;
  private wake: () => void = () => {};

  private profile: ServiceProfile = UNLEARNED;

  constructor(private readonly source: CompletionSource) {}

  useProfile(profile: ServiceProfile): void {
    this.profile = profile;
  }

  attach(wake: () => void): void {
    this.wake = wake;
  }

  granted(ticket: Ticket, backend: Backend): void {
    const pod = this.podOf(backend);
    const now = ticket.grantedAtMs;
    // Sent past the pod's proven slots, it starts when one of them frees (a probe queues inside the pod).
    const serviceMs = this.profile.serviceMs(backend);
    if (pod.running.length < this.serverCount(backend)) ticket.expectedStartMs = now;
    else ticket.expectedStartMs = Math.max(now, this.fillServers(pod, backend, serviceMs > 0 ? serviceMs : DEFAULT_SERVICE_MS, now)[0] as number);
    pod.running.push(ticket);
  }

  released(ticket: Ticket): void {
    const list = ticket.inQueue as TicketQueue | undefined;
    if (list && ticket.backend && this.pods.get(ticket.backend)?.running === list) list.remove(ticket);
  }

  private podOf(backend: Backend): PodPlan {
    let pod = this.pods.get(backend);
    if (!pod) {
      pod = { backend, running: new TicketQueue(), serviceMs: 0, admit: 0, servers: [], done: 0, index: 0 };
      this.pods.set(backend, pod);
    }
    return pod;
  }

  /** The pod for a new request when nobody waits: the one that completes it first, if it can be sent now. */
  pick(ticket: Ticket): Backend | undefined {
    if (this.planning) return undefined;
    const now = this.source.now();
    const plans = this.buildPlans(now);
    return this.choose(plans, ticket, now)?.backend;
  }

  /** Grants every queued general ticket whose best slot can be had now; arms a wake-up for held ones. */
  plan(queue: TicketQueue, grant: (ticket: Ticket, backend: Backend) => void): void {
    if (this.planning) {
      this.again = true;
      return;
    }
    this.planning = true;
    try {
      do {
        this.again = false;
        this.planOnce(queue, grant);
      } while (this.again);
    } finally {
      this.planning = false;
    }
  }

  private planOnce(queue: TicketQueue, grant: (ticket: Ticket, backend: Backend) => void): void {
    // Nothing to plan: no waiter, or no pod could be sent one now (the common case under a backlog).
    if (queue.length === 0 || !this.source.hasRoom()) return this.disarm();
    const now = this.source.now();
    const heap = this.buildPlans(now);
    let admissible = 0;
    for (const p of heap) {
      admissible += p.admit;
      p.done = completion(p, now);
    }
    if (admissible === 0) return this.disarm();
    // Pods in a min-heap by expected completion: each waiter costs O(log pods), not a scan.
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, i);
    heap.forEach((p, i) => (p.index = i));
    let wakeAt = Infinity;
    let steps = 0;
    let t = queue.peek();
    while (t && admissible > 0) {
      const next = t.next;
      if (steps++ >= MAX_WALK) {
        // Bounded planning: what can still be sent goes to the next waiters in arrival order.
        const p = firstAdmitting(heap, t.avoid);
        if (p) {
          grant(t, p.backend);
          this.book(heap, p, now);
          admissible--;
        }
        t = next;
        continue;
      }
      const best = heapBest(heap, t.avoid);
      if (best) {
        const chosen = this.chooseInHeap(heap, t.avoid, best);
        if (chosen) {
          grant(t, chosen.backend);
          this.book(heap, chosen, now);
          admissible--;
        } else {
          // Held for a pod that frees sooner than any slot that is free now would finish it.
          const start = best.servers[0] as number;
          if (start < wakeAt) wakeAt = start;
          this.book(heap, best, now);
        }
      }
      t = next;
    }
    if (admissible > 0 && queue.length > 0 && wakeAt < Infinity) this.arm(Math.max(wakeAt, now + MIN_WAKE_MS), now);
    else this.disarm();
  }

  private book(heap: PodPlan[], p: PodPlan, now: number): void {
    reserve(p, now);
    p.done = completion(p, now);
    siftDown(heap, p.index);
  }

  /** `choose` over the heap: only pods due no later than the tie bound are visited. */
  private chooseInHeap(heap: readonly PodPlan[], avoid: Backend | undefined, best: PodPlan): PodPlan | undefined {
    const bound = best.done + TIE * best.serviceMs;
    const scratch = this.scratch;
    scratch.clear();
    let only: PodPlan | undefined;
    const stack = this.stack;
    stack.length = 0;
    if (heap.length > 0) stack.push(0);
    while (stack.length > 0) {
      const i = stack.pop() as number;
      const p = heap[i] as PodPlan;
      if (p.done > bound) continue;
      if (p.admit > 0 && p.backend !== avoid) {
        only = p;
        scratch.add(p.backend);
      }
      if (2 * i + 1 < heap.length) stack.push(2 * i + 1);
      if (2 * i + 2 < heap.length) stack.push(2 * i + 2);
    }
    if (scratch.size <= 1) return only;
    const picked = this.source.pick(scratch);
    return (picked && this.pods.get(picked)) ?? only;
  }

  /**
   * Among pods that can be sent the request now, one whose completion ties with the best overall
   * (`best`: computed if not given); undefined when waiting for a busy pod finishes it sooner.
   */
  private choose(plans: readonly PodPlan[], ticket: Ticket, now: number, best = bestPlan(plans, ticket.avoid, now)): PodPlan | undefined {
    if (!best) return undefined;
    const bound = completion(best, now) + TIE * best.serviceMs;
    let only: PodPlan | undefined;
    let count = 0;
    for (const p of plans) {
      if (p.admit > 0 && p.backend !== ticket.avoid && completion(p, now) <= bound) {
        only = p;
        count++;
      }
    }
    if (count <= 1) return only;
    const scratch = this.scratch;
    scratch.clear();
    for (const p of plans) if (p.admit > 0 && p.backend !== ticket.avoid && completion(p, now) <= bound) scratch.add(p.backend);
    const picked = this.source.pick(scratch);
    return plans.find((p) => p.backend === picked) ?? only;
  }

  /** Every working pod's admission room and server free times, from its in-flight requests. */
  private buildPlans(now: number): PodPlan[] {
    const fallback = this.fallbackServiceMs();
    const plans = this.plans;
    plans.length = 0;
    for (const b of this.source.backends()) {
      if (!b.acceptsNewWork || b.usable <= 0) continue;
      const pod = this.podOf(b);
      const learned = this.profile.serviceMs(b);
      const estimate = learned > 0 ? learned : fallback;
      // A request already running longer than the estimate shows the pod is at least that slow now.
      const oldest = pod.running.peek();
      pod.serviceMs = oldest ? Math.max(estimate, now - oldest.expectedStartMs) : estimate;
      pod.admit = Math.max(0, Math.min(b.usable, b.inflight + MAX_WALK) - b.inflight);
      this.fillServers(pod, b, estimate, now);
      plans.push(pod);
    }
    return plans;
  }

  /** The pod's servers (proven slots) and when each frees: it runs them in parallel, the rest FIFO in grant order. */
  private fillServers(pod: PodPlan, b: Backend, estimate: number, now: number): number[] {
    const servers = pod.servers;
    servers.length = Math.max(1, Math.min(this.serverCount(b), b.inflight + MAX_WALK));
    servers.fill(-Infinity);
    for (let t = pod.running.peek(); t; t = t.next) {
      const start = Math.max(t.expectedStartMs, servers[0] as number);
      servers.shift();
      insertSorted(servers, expectedEnd(start, estimate, now));
    }
    for (let i = 0; i < servers.length; i++) if ((servers[i] as number) < now) servers[i] = now;
    return servers;
  }

  /** Pods not measured yet are assumed as fast as the pool's average, so they get tried. */
  private fallbackServiceMs(): number {
    let sum = 0;
    let n = 0;
    for (const b of this.source.backends()) {
      const learned = this.profile.serviceMs(b);
      if (learned > 0 && b.acceptsNewWork) {
        sum += learned;
        n++;
      }
    }
    return n > 0 ? sum / n : DEFAULT_SERVICE_MS;
  }

  /** Slots the plan expects the pod to run in parallel: its proven ones and its trial slot, within its limit. */
  private serverCount(b: Backend): number {
    return Math.min(b.usable, this.profile.parallelSlots(b));
  }

  private arm(atMs: number, now: number): void {
    if (this.timer && atMs >= this.wakeAtMs) return;
    this.disarm();
    this.wakeAtMs = atMs;
    this.timer = this.source.timers.set(() => {
      this.timer = undefined;
      this.wakeAtMs = Infinity;
      this.wake();
    }, atMs - now);
  }

  private disarm(): void {
    if (this.timer) {
      this.source.timers.clear(this.timer);
      this.timer = undefined;
    }
    this.wakeAtMs = Infinity;
  }
}

/**
 * When a request that started at `start` ends: after the estimate, or, once late by `o`, another
 * o + min(o, estimate) from now (as long again as it is late, then as long as it has run).
 */
function expectedEnd(start: number, estimate: number, now: number): number {
  const end = start + estimate;
  if (end > now) return end;
  const late = now - end;
  return now + late + Math.min(late, estimate) + 1;
}

/** When a request given to this pod next would be done. */
function completion(p: PodPlan, now: number): number {
  return Math.max(now, p.servers[0] as number) + p.serviceMs;
}

/** The pod that would complete the request first, whether or not it can be sent there now. */
function bestPlan(plans: readonly PodPlan[], avoid: Backend | undefined, now: number): PodPlan | undefined {
  let best: PodPlan | undefined;
  let bestAt = Infinity;
  for (const p of plans) {
    if (p.backend === avoid) continue;
    const at = completion(p, now);
    if (at < bestAt || (at === bestAt && best && best.admit === 0 && p.admit > 0)) {
      best = p;
      bestAt = at;
    }
  }
  return best;
}

/** Books the pod's next server for one request (sent now if it has room, else when it frees). */
function reserve(p: PodPlan, now: number): void {
  const start = Math.max(now, p.servers.shift() as number);
  insertSorted(p.servers, start + p.serviceMs);
  if (p.admit > 0) p.admit--;
}

/** The pod with the earliest completion other than `avoid`: the root, or the better of its children. */
function heapBest(heap: readonly PodPlan[], avoid: Backend | undefined): PodPlan | undefined {
  const root = heap[0];
  if (!root || root.backend !== avoid) return root;
  const a = heap[1];
  const b = heap[2];
  return a && b ? (before(b, a) ? b : a) : (a ?? b);
}

/** Heap order: earlier completion first; on a tie, a pod that can be sent the request now. */
function before(a: PodPlan, b: PodPlan): boolean {
  return a.done < b.done || (a.done === b.done && a.admit > 0 && b.admit === 0);
}

/** Restores the heap below `i` after its key grew (a booking only ever makes a pod finish later). */
function siftDown(heap: PodPlan[], i: number): void {
  const p = heap[i] as PodPlan;
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && before(heap[r] as PodPlan, heap[l] as PodPlan) ? r : l;
    const child = heap[c] as PodPlan;
    if (!before(child, p)) break;
    heap[i] = child;
    child.index = i;
    i = c;
  }
  heap[i] = p;
  p.index = i;
}

function insertSorted(values: number[], value: number): void {
  let i = values.length;
  values.push(value);
  while (i > 0 && (values[i - 1] as number) > value) {
    values[i] = values[i - 1] as number;
    i--;
  }
  values[i] = value;
}

function firstAdmitting(plans: readonly PodPlan[], avoid: Backend | undefined): PodPlan | undefined {
  let best: PodPlan | undefined;
  for (const p of plans) {
    if (p.backend === avoid || p.admit === 0) continue;
    if (!best || p.serviceMs < best.serviceMs) best = p;
  }
  return best;
}

/** A reusable candidate list for the balancer when completions tie. */
class ScratchCandidates implements Candidates {
  private items: Backend[] = [];

  get size(): number {
    return this.items.length;
  }

  clear(): void {
    this.items.length = 0;
  }

  add(b: Backend): void {
    this.items.push(b);
  }

  at(index: number): Backend {
    return this.items[index] as Backend;
  }

  fewestInflight(random: () => number): Backend | undefined {
    let fewest = Infinity;
    let ties = 0;
    let chosen: Backend | undefined;
    for (const b of this.items) {
      if (b.inflight < fewest) {
        fewest = b.inflight;
        chosen = b;
        ties = 1;
      } else if (b.inflight === fewest && random() * ++ties < 1) {
        chosen = b;
      }
    }
    return chosen;
  }
}
