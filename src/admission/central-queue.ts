/**
 * The central queue of one pool: the mechanism that makes the gateway beat per-connection spreading.
 * Each pod has a number of slots; a request takes a free slot chosen by the balancer or waits here,
 * and every freed slot, on any pod, goes to the oldest waiter that may use it. So no request waits
 * behind a slow pod while another pod has a free slot (HAProxy's `maxconn` + queue, made pool-wide).
 *
 * Waiters are kept in two kinds of FIFO: one general queue for requests any pod may serve, and one
 * per pod for sticky requests pinned to it; a freed slot compares the heads of its pod's queue and
 * the general queue by arrival order. p-queue does not fit here: it runs tasks under one concurrency
 * number, while a slot belongs to a specific pod and the pod is only chosen when the slot frees.
 *
 * That is the greedy policy. A pool may plug in a `Dispatcher` instead (earliest-completion.ts: the
 * slot that finishes a request first, even if it is not free yet); sticky waiters are served as here.
 */
import type { QueueLimits } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import type { Ticket } from './ticket.js';
import { TicketQueue } from './ticket-queue.js';

/** Timer functions, injectable so tests can run the queue on a virtual clock. */
export interface Timers {
  set(callback: () => void, ms: number): NodeJS.Timeout;
  clear(timer: NodeJS.Timeout): void;
}

/** A dispatch policy for general (non-sticky) requests other than greedy. */
export interface Dispatcher {
  /** Called once with the queue's re-plan function, for the policy's own wake-ups. */
  attach(wake: () => void): void;
  /** A new request and nobody waiting: the pod to grant it now, or undefined to queue it. */
  pick(ticket: Ticket): Backend | undefined;
  /** Hands free slots to queued general tickets (through `grant`) as the policy sees fit. */
  plan(queue: TicketQueue, grant: (ticket: Ticket, backend: Backend) => void): void;
  granted(ticket: Ticket, backend: Backend): void;
  released(ticket: Ticket): void;
}

export type { QueueLimits } from '../config.js';

/** What the queue needs from its pool. */
export interface SlotSource {
  /** A pod with a free slot for new work, chosen by the pool's balancer, other than `avoid`. */
  pickFree(avoid: Backend | undefined): Backend | undefined;
  /** Whether any pod accepts new work (free slot or not). */
  hasWorkingBackend(): boolean;
  /** Takes one slot on `backend` for `ticket` (in-flight accounting); the ticket's grant fields are set. */
  occupy(backend: Backend, ticket: Ticket): void;
  now(): number;
  readonly timers?: Timers;
}

export class CentralQueue {
  private readonly general = new TicketQueue();
  /** Sticky waiters per pod: the queue owns them, the pod knows nothing of them. */
  private readonly pinnedBy = new Map<Backend, TicketQueue>();
  private seq = 0;
  /** Waiting tickets, general and pinned. */
  length = 0;

  /** Injected timers (tests); undefined: the global ones, called directly on the hot path. */
  private readonly timers: Timers | undefined;
  private readonly grantQueued = (ticket: Ticket, backend: Backend): void => {
    this.unqueue(ticket);
    this.grant(ticket, backend);
  };

  constructor(
    private readonly limits: QueueLimits,
    private readonly slots: SlotSource,
    private readonly dispatcher?: Dispatcher,
  ) {
    this.timers = slots.timers;
    dispatcher?.attach(() => this.replan());
  }

  /** Grants a slot now or queues the ticket; may call `onGranted`/`onRejected` synchronously. */
  admit(ticket: Ticket): void {
    ticket.seq = ++this.seq;
    ticket.enqueuedAtMs = this.slots.now();
    const target = ticket.target;
    if (target) {
      if (target.servesSticky && target.hasFreeSlot && this.waitingFor(target) === 0) {
        this.grant(ticket, target);
      } else {
        this.enqueue(ticket, this.pinnedOf(target));
      }
      return;
    }
    const dispatcher = this.dispatcher;
    if (this.general.length === 0) {
      const backend = dispatcher ? dispatcher.pick(ticket) : this.slots.pickFree(ticket.avoid);
      if (backend) {
        this.grant(ticket, backend);
        return;
      }
    }
    if (!this.slots.hasWorkingBackend() && !this.limits.holdWithoutPods) {
      this.reject(ticket, new GatewayError('NO_ENDPOINTS'));
      return;
    }
    this.enqueue(ticket, this.general);
    if (dispatcher && ticket.state === 'queued') this.replan();
  }

  /** The client left: a waiting ticket is dropped and never reaches a pod. */
  cancel(ticket: Ticket): void {
    if (ticket.state !== 'queued') return;
    this.unqueue(ticket);
    ticket.state = 'rejected';
  }

  /** A slot on `backend` may be free (a request ended, the pod joined, its limit grew): hand it on. */
  onCapacity(backend: Backend): void {
    if (this.dispatcher) {
      this.capacityPlanned(backend);
      return;
    }
    while (backend.hasFreeSlot) {
      const pinned = backend.servesSticky ? this.pinnedBy.get(backend)?.peek() : undefined;
      let general = backend.acceptsNewWork ? this.general.peek() : undefined;
      // A retry avoids the pod that just failed it; look one further rather than hand it back.
      if (general && general.avoid === backend) general = general.next?.avoid === backend ? undefined : general.next;
      const next = pinned && general ? (pinned.seq < general.seq ? pinned : general) : (pinned ?? general);
      if (!next) return;
      this.unqueue(next);
      this.grant(next, backend);
    }
  }

  /** Sticky requests waiting for a slot on `backend`. */
  waitingFor(backend: Backend): number {
    return this.pinnedBy.get(backend)?.length ?? 0;
  }

  /** The pod is forgotten: its (already repinned, so empty) waiter list goes too. */
  forget(backend: Backend): void {
    this.pinnedBy.delete(backend);
  }

  private pinnedOf(backend: Backend): TicketQueue {
    let queue = this.pinnedBy.get(backend);
    if (!queue) {
      queue = new TicketQueue();
      this.pinnedBy.set(backend, queue);
    }
    return queue;
  }

  /** The pod left or was ejected: its pinned waiters follow their conversations to new pods. */
  repinWaiters(backend: Backend): void {
    const waiting = this.pinnedBy.get(backend);
    if (!waiting) {
      this.replan();
      return;
    }
    for (const ticket of waiting.drain()) {
      this.length--;
      ticket.inQueue = undefined;
      const next = ticket.repin();
      ticket.target = next;
      if (next && next.servesSticky && next.hasFreeSlot && this.waitingFor(next) === 0) {
        this.clearTimer(ticket);
        this.grant(ticket, next);
      } else {
        this.length++;
        (next ? this.pinnedOf(next) : this.general).push(ticket);
      }
    }
    this.replan();
  }

  /** Lets the dispatcher hand free slots to general waiters (after any change it cannot see). */
  replan(): void {
    this.dispatcher?.plan(this.general, this.grantQueued);
  }


  /** Sticky waiters older than every general one first, then the plan, then sticky waiters again. */
  private capacityPlanned(backend: Backend): void {
    if (backend.servesSticky) {
      const waiting = this.pinnedBy.get(backend);
      for (let pinned = waiting?.peek(); pinned && backend.hasFreeSlot; pinned = waiting?.peek()) {
        const general = backend.acceptsNewWork ? this.general.peek() : undefined;
        if (general && general.seq < pinned.seq) break;
        this.grantQueued(pinned, backend);
      }
    }
    this.replan();
    if (backend.servesSticky) {
      const waiting = this.pinnedBy.get(backend);
      for (let pinned = waiting?.peek(); pinned && backend.hasFreeSlot; pinned = waiting?.peek()) this.grantQueued(pinned, backend);
    }
  }

  /** No pod is left at all: waiting for one would only delay the inevitable 503 (unless the pool waits for pods). */
  rejectAllGeneral(): void {
    if (this.limits.holdWithoutPods) return;
    for (const ticket of this.general.drain()) {
      this.length--;
      this.clearTimer(ticket);
      this.reject(ticket, new GatewayError('NO_ENDPOINTS'));
    }
  }

  /**
   * Takes every waiter for a slot out (general and pinned, not those parked elsewhere), in arrival
   * order, as new tickets: they are to be admitted somewhere else (another replica took over scheduling).
   */
  drain(): Ticket[] {
    const out = [...this.general.drain()];
    for (const queue of this.pinnedBy.values()) out.push(...queue.drain());
    for (const ticket of out) {
      this.length--;
      this.clearTimer(ticket);
      ticket.state = 'new';
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Waits in another queue (a conversation's turn) under this pool's limits: counted in its length,
   * expiring at its max wait or the ticket's deadline, removed by `cancel` when the client leaves.
   */
  park(ticket: Ticket, queue: TicketQueue): void {
    ticket.seq = ++this.seq;
    ticket.enqueuedAtMs = this.slots.now();
    this.enqueue(ticket, queue);
  }

  /** Takes a parked ticket out of its queue; it then goes through `admit` like a new one. */
  unpark(ticket: Ticket): void {
    if (ticket.state !== 'queued') return;
    this.unqueue(ticket);
    ticket.state = 'new';
  }

  private enqueue(ticket: Ticket, queue: TicketQueue): void {
    if (this.length >= this.limits.maxLength) {
      this.reject(ticket, new GatewayError('QUEUE_FULL', `the pool queue is full (${this.limits.maxLength} waiting); retry later`));
      return;
    }
    const now = this.slots.now();
    const queueLimitMs = now + this.limits.maxWaitMs;
    const expiresMs = Math.min(queueLimitMs, ticket.deadlineMs);
    if (expiresMs <= now) {
      this.reject(ticket, new GatewayError('DEADLINE_EXCEEDED'));
      return;
    }
    ticket.state = 'queued';
    queue.push(ticket);
    this.length++;
    const code = ticket.deadlineMs < queueLimitMs ? 'DEADLINE_EXCEEDED' : 'QUEUE_TIMEOUT';
    const expire = () => this.expire(ticket, code);
    ticket.timer = this.timers ? this.timers.set(expire, expiresMs - now) : setTimeout(expire, expiresMs - now);
  }

  private expire(ticket: Ticket, code: 'DEADLINE_EXCEEDED' | 'QUEUE_TIMEOUT'): void {
    ticket.timer = undefined;
    if (ticket.state !== 'queued') return;
    this.unqueue(ticket);
    this.reject(ticket, new GatewayError(code));
  }

  private unqueue(ticket: Ticket): void {
    const queue = ticket.inQueue as TicketQueue | undefined;
    if (queue?.remove(ticket)) this.length--;
    this.clearTimer(ticket);
  }

  private clearTimer(ticket: Ticket): void {
    if (ticket.timer) {
      if (this.timers) this.timers.clear(ticket.timer);
      else clearTimeout(ticket.timer);
      ticket.timer = undefined;
    }
  }

  private grant(ticket: Ticket, backend: Backend): void {
    ticket.state = 'granted';
    ticket.backend = backend;
    ticket.grantedAtMs = this.slots.now();
    this.slots.occupy(backend, ticket);
    this.dispatcher?.granted(ticket, backend);
    ticket.onGranted(backend);
  }

  private reject(ticket: Ticket, error: GatewayError): void {
    ticket.state = 'rejected';
    ticket.onRejected(error);
  }
}
