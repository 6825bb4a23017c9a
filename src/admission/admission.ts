/**
 * Admission for one pool: every request takes its slot here and gives it back here. It joins the
 * pool's pods (pool/), the balancer that picks among free slots (balancer/), the central queue that
 * holds waiters (central-queue.ts) with its dispatch policy, and the leases that end attempts
 * (lease.ts). `admit` grants a slot now or queues; each grant is a lease, and `endLease` is the one
 * place a slot is given back and the one place completions are heard (the limiter, peak-EWMA, passive
 * ejection and metrics listen here, never to the proxy).
 */
import { balancers } from '../balancer/registry.js';
import type { Balancer, BalancerName } from '../balancer/types.js';
import type { Backend } from '../pool/backend.js';
import { isPodFailure, type Outcome } from '../pool/outcome.js';
import type { Pool, PoolEvents } from '../pool/pool.js';
import { CentralQueue, type QueueLimits, type Timers } from './central-queue.js';
import { EarliestCompletion, type ServiceProfile } from './earliest-completion.js';
import { LocalLease } from './lease.js';
import type { Ticket } from './ticket.js';
import type { DispatchMode } from '../config-schema.js';

export type { DispatchMode } from '../config-schema.js';

export interface AdmissionOptions {
  readonly balancer: BalancerName;
  readonly queue: QueueLimits;
  /** How general requests meet free slots: the first free slot (greedy) or the earliest completion. */
  readonly dispatch?: DispatchMode;
  readonly random?: () => number;
  readonly timers?: Timers;
}

/** Lease events (hot path: keep listeners cheap). */
export interface LeaseListener {
  /** An attempt was granted a slot on `backend`: its lease begins. */
  requestStarted?(backend: Backend, lease: LocalLease): void;
  /** An attempt's lease on `backend` was released with its outcome. */
  requestEnded?(backend: Backend, outcome: Outcome, latencyMs: number | undefined, lease: LocalLease): void;
}

/** What cluster scheduling tells admission about requests that are not simply this replica's. */
export interface ElsewhereCounts {
  /** Other replicas' requests waiting in this replica's queue. */
  hostedWaiting(): number;
  /** Other replicas' requests holding a slot this replica granted. */
  hostedInflight(): number;
  /** This replica's requests waiting in the queue of the replica that schedules the pool. */
  waitingElsewhere(): number;
}

const ALONE: ElsewhereCounts = { hostedWaiting: () => 0, hostedInflight: () => 0, waitingElsewhere: () => 0 };

const realTimers: Timers = { set: (cb, ms) => setTimeout(cb, ms).unref(), clear: (t) => clearTimeout(t) };

export class Admission implements PoolEvents {
  readonly balancerName: BalancerName;
  readonly dispatch: DispatchMode;
  readonly queue: CentralQueue;
  /** The completion-aware dispatcher, when `dispatch` is earliest-completion; it tracks what runs where. */
  private readonly planner: EarliestCompletion | undefined;
  private readonly balancer: Balancer;
  private readonly random: () => number;
  /**
   * Cluster scheduling's counts, so each replica reports its own clients' requests once: its queue
   * may hold other replicas' requests (hosted), and its own may wait in another replica's queue.
   */
  elsewhere: ElsewhereCounts = ALONE;
  private readonly endListeners: LeaseListener[] = [];
  private readonly startListeners: LeaseListener[] = [];

  constructor(
    readonly pool: Pool,
    options: AdmissionOptions,
  ) {
    this.balancerName = options.balancer;
    this.dispatch = options.dispatch ?? 'greedy';
    this.random = options.random ?? Math.random;
    const now = pool.now;
    this.balancer = balancers[options.balancer]({ now });
    const timers = options.timers;
    this.planner =
      this.dispatch === 'earliest-completion'
        ? new EarliestCompletion({
            backends: () => pool.backends,
            hasRoom: () => pool.free.size > 0,
            pick: (candidates) => this.balancer.pick(candidates, this.random),
            now,
            timers: timers ?? realTimers,
          })
        : undefined;
    this.queue = new CentralQueue(
      options.queue,
      {
        pickFree: (avoid) => this.pickFree(avoid),
        hasWorkingBackend: () => pool.workingCount > 0,
        occupy: (backend, ticket) => this.occupy(backend, ticket),
        now,
        ...(timers ? { timers } : {}),
      },
      this.planner,
    );
    pool.attach(this);
  }

  /** Where completion-aware dispatch reads each pod's service time and proven slots (the adaptive limiter). */
  useProfile(profile: ServiceProfile): void {
    this.planner?.useProfile(profile);
  }

  listen(listener: LeaseListener): void {
    if (listener.requestEnded) this.endListeners.push(listener);
    if (listener.requestStarted) this.startListeners.push(listener);
  }

  admit(ticket: Ticket): void {
    this.queue.admit(ticket);
  }

  cancel(ticket: Ticket): void {
    this.queue.cancel(ticket);
  }

  /** This replica's clients' requests waiting for a slot, here or in the queue of the replica that schedules the pool. */
  get ownWaiting(): number {
    return this.queue.length - this.elsewhere.hostedWaiting() + this.elsewhere.waitingElsewhere();
  }

  /** This replica's clients' requests holding a slot. */
  get ownInflight(): number {
    return this.pool.inflight - this.elsewhere.hostedInflight();
  }

  /**
   * A slot granted by the replica that schedules this pool for the cluster: counted here like one of
   * ours (so this replica knows what it has on each pod if it must schedule alone), its end also
   * reported through `onEnd`. The caller then tells the ticket (`onGranted`).
   */
  grantedElsewhere(ticket: Ticket, backend: Backend): void {
    ticket.state = 'granted';
    ticket.backend = backend;
    ticket.grantedAtMs = this.pool.now();
    this.occupy(backend, ticket);
  }

  /** Releases a granted ticket's current lease (see `Lease.release`); idempotent. */
  release(ticket: Ticket, outcome: Outcome, latencyMs?: number): void {
    if (ticket.state === 'granted') ticket.lease?.release(outcome, latencyMs);
  }

  // PoolEvents: the pool's slot changes reach the queue.
  capacity(backend: Backend): void {
    this.queue.onCapacity(backend);
  }

  lost(backend: Backend): void {
    this.queue.repinWaiters(backend);
  }

  forgotten(backend: Backend): void {
    this.queue.forget(backend);
  }

  noneWorking(): void {
    this.queue.rejectAllGeneral();
  }

  /** The one place a slot is given back: a lease of this pool ended. `latencyMs` feeds the pod's latency estimate. */
  private readonly endLease = (lease: LocalLease, outcome: Outcome, latencyMs: number | undefined): void => {
    const ticket = lease.holder;
    if (ticket.lease === lease && ticket.state === 'granted') ticket.state = 'released';
    const backend = lease.backend;
    const now = this.pool.now();
    backend.requests++;
    if (isPodFailure(outcome)) backend.failures++;
    if (latencyMs !== undefined) backend.latency.observe(latencyMs, now);
    this.pool.vacate(backend, now);
    this.planner?.released(ticket);
    for (const l of this.endListeners) l.requestEnded!(backend, outcome, latencyMs, lease);
    if (backend.state !== 'gone') this.queue.onCapacity(backend);
    else this.pool.forgetIfIdle(backend);
  };

  private occupy(backend: Backend, ticket: Ticket): void {
    this.pool.occupy(backend, ticket.grantedAtMs);
    const lease = new LocalLease(ticket, backend, ticket.grantedAtMs, ++ticket.grants, backend.inflight, backend.inflightArea, this.endLease);
    ticket.lease = lease;
    for (const l of this.startListeners) l.requestStarted!(backend, lease);
  }

  /** The balancer's choice among free pods, avoiding one (a retry's failed pod) when another is free. */
  private pickFree(avoid: Backend | undefined): Backend | undefined {
    const free = this.pool.free;
    const picked = this.balancer.pick(free, this.random);
    if (!avoid || picked !== avoid) return picked;
    if (free.size < 2) return undefined;
    free.remove(avoid);
    const other = this.balancer.pick(free, this.random);
    free.update(avoid);
    return other;
  }
}
