/**
 * One upstream pool: its pods (from discovery snapshots, diffed in place), their slots, the balancer
 * that picks among free slots, and the central queue for everything else. All admission goes through
 * `admit`, all accounting ends in `release`, so every slot is taken and given back in one place.
 */
import { CentralQueue, type QueueLimits, type Timers } from '../admission/central-queue.js';
import { EarliestCompletion } from '../admission/earliest-completion.js';
import { LocalLease } from '../admission/lease.js';
import type { Ticket } from '../admission/ticket.js';
import { balancers } from '../balancer/registry.js';
import type { Balancer, BalancerName } from '../balancer/types.js';
import type { EndpointInfo } from '../discovery/types.js';
import { Backend, type BackendState } from './backend.js';
import { FreeSlots } from './free-slots.js';
import { isPodFailure, type Outcome } from './outcome.js';

export interface PoolOptions {
  readonly name: string;
  readonly balancer: BalancerName;
  /** Slots per pod; Infinity: unlimited (no queue, every request goes straight to a pod). With `adaptive`: each pod's starting limit. */
  readonly slotsPerEndpoint: number;
  readonly queue: QueueLimits;
  /** Per-pod limits are learned (`slotsPerEndpoint: auto`); set by the adaptive limiter through `setLimit`. */
  readonly adaptive?: boolean;
  /** How general requests meet free slots: the first free slot (greedy) or the earliest completion. */
  readonly dispatch?: DispatchMode;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly timers?: Timers;
}

export type DispatchMode = 'greedy' | 'earliest-completion';

export type { Outcome } from './outcome.js';
export { isPodFailure } from './outcome.js';

export interface PoolListener {
  backendAdded?(backend: Backend): void;
  backendRemoved?(backend: Backend): void;
  /** A pod's state changed (discovery, ejection). */
  stateChanged?(backend: Backend): void;
  /** An attempt was granted a slot on `backend`: its lease begins (hot path: keep it cheap). */
  requestStarted?(backend: Backend, lease: LocalLease): void;
  /** An attempt's lease on `backend` was released with its outcome (hot path: keep it cheap). */
  requestEnded?(backend: Backend, outcome: Outcome, latencyMs: number | undefined, lease: LocalLease): void;
}

/** Latency assumed for a pod before its first answer, when the pool has no measurements yet. */
const DEFAULT_SEED_LATENCY_MS = 100;

export class Pool {
  readonly name: string;
  readonly balancerName: BalancerName;
  readonly adaptive: boolean;
  readonly dispatch: DispatchMode;
  /** The completion-aware dispatcher, when `dispatch` is earliest-completion; it tracks what runs where. */
  private readonly planner: EarliestCompletion | undefined;
  private readonly backendsByKey = new Map<string, Backend>();
  /** Pods that left the slices while requests still ran on them: kept, and revived if they return, until the last ends. */
  private readonly leaving = new Map<string, Backend>();
  private readonly free = new FreeSlots();
  private readonly balancer: Balancer;
  readonly queue: CentralQueue;
  readonly now: () => number;
  private readonly random: () => number;
  private slotsPerEndpoint: number;
  private readonly listeners: PoolListener[] = [];
  private readonly endListeners: PoolListener[] = [];
  private readonly startListeners: PoolListener[] = [];
  /** Pods accepting new work, whether or not a slot is free. */
  private working = 0;
  /** Requests holding a slot in this pool. */
  inflight = 0;
  /** Whether discovery has delivered its first snapshot. */
  synced = false;

  constructor(options: PoolOptions) {
    this.name = options.name;
    this.balancerName = options.balancer;
    this.slotsPerEndpoint = options.slotsPerEndpoint;
    this.now = options.now ?? (() => performance.now());
    this.balancer = balancers[options.balancer]({ now: this.now });
    this.random = options.random ?? Math.random;
    this.adaptive = options.adaptive ?? false;
    this.dispatch = options.dispatch ?? 'greedy';
    const timers = options.timers;
    const dispatcher = (this.planner =
      this.dispatch === 'earliest-completion'
        ? new EarliestCompletion({
            backends: () => this.backendsByKey.values(),
            hasRoom: () => this.free.size > 0,
            pick: (candidates) => this.balancer.pick(candidates, this.random),
            now: this.now,
            ...(timers ? { timers } : { timers: { set: (cb, ms) => setTimeout(cb, ms).unref(), clear: (t) => clearTimeout(t) } }),
          })
        : undefined);
    this.queue = new CentralQueue(
      options.queue,
      {
        pickFree: (avoid) => this.pickFree(avoid),
        hasWorkingBackend: () => this.working > 0,
        occupy: (backend, ticket) => this.occupy(backend, ticket),
        now: this.now,
        ...(timers ? { timers } : {}),
      },
      dispatcher,
    );
  }

  listen(listener: PoolListener): void {
    this.listeners.push(listener);
    if (listener.requestEnded) this.endListeners.push(listener);
    if (listener.requestStarted) this.startListeners.push(listener);
  }

  get backends(): IterableIterator<Backend> {
    return this.backendsByKey.values();
  }

  get size(): number {
    return this.backendsByKey.size;
  }

  get(key: string): Backend | undefined {
    return this.backendsByKey.get(key);
  }

  /** Pods that accept new work (new requests, new conversations). */
  get workingCount(): number {
    return this.working;
  }

  admit(ticket: Ticket): void {
    this.queue.admit(ticket);
  }

  cancel(ticket: Ticket): void {
    this.queue.cancel(ticket);
  }

  /** Releases a granted ticket's current lease (see `Lease.release`); idempotent. */
  release(ticket: Ticket, outcome: Outcome, latencyMs?: number): void {
    if (ticket.state === 'granted') ticket.lease?.release(outcome, latencyMs);
  }

  /** The one place a slot is given back: a lease of this pool ended. `latencyMs` feeds the pod's latency estimate. */
  private readonly endLease = (lease: LocalLease, outcome: Outcome, latencyMs: number | undefined): void => {
    const ticket = lease.holder;
    if (ticket.lease === lease && ticket.state === 'granted') ticket.state = 'released';
    const backend = lease.backend;
    backend.addInflight(-1, this.now());
    this.inflight--;
    backend.requests++;
    if (isPodFailure(outcome)) backend.failures++;
    if (latencyMs !== undefined) backend.latency.observe(latencyMs, this.now());
    this.free.update(backend);
    this.planner?.released(ticket);
    for (const l of this.endListeners) l.requestEnded!(backend, outcome, latencyMs, lease);
    if (backend.state !== 'gone') this.queue.onCapacity(backend);
    else if (backend.inflight === 0 && this.leaving.get(backend.key) === backend) this.forget(backend);
  };

  /** The balancer's choice among free pods, avoiding one (a retry's failed pod) when another is free. */
  private pickFree(avoid: Backend | undefined): Backend | undefined {
    const picked = this.balancer.pick(this.free, this.random);
    if (!avoid || picked !== avoid) return picked;
    if (this.free.size < 2) return undefined;
    this.free.remove(avoid);
    const other = this.balancer.pick(this.free, this.random);
    this.free.update(avoid);
    return other;
  }

  /** Takes a pod out of rotation (failures or probes); its sticky waiters follow their conversations. */
  eject(backend: Backend, by: 'passive' | 'health'): void {
    if (backend.state === 'gone' || backend.state === 'ejected') return;
    backend.ejectedBy = by;
    this.setState(backend, 'ejected');
    this.queue.repinWaiters(backend);
  }

  /** Puts an ejected pod back in the state discovery gives it. */
  restore(backend: Backend): void {
    if (backend.state !== 'ejected') return;
    backend.ejectedBy = undefined;
    this.setState(backend, backend.discovered);
  }

  /** Applies a discovery snapshot: adds, updates and removes pods in place. */
  update(endpoints: readonly EndpointInfo[]): void {
    const seen = new Set<string>();
    for (const info of endpoints) {
      const state = stateOf(info);
      if (!state || seen.has(info.key)) continue;
      seen.add(info.key);
      const existing = this.backendsByKey.get(info.key) ?? this.revive(info.key);
      if (existing) {
        existing.pod = info.pod ?? existing.pod;
        existing.zone = info.zone;
        existing.discovered = state;
        if (existing.state !== 'ejected') this.setState(existing, state);
      } else {
        this.add(info, state);
      }
    }
    for (const backend of [...this.backendsByKey.values()]) {
      if (!seen.has(backend.key)) this.remove(backend);
    }
    this.synced = true;
    if (this.working === 0) this.queue.rejectAllGeneral();
  }

  /** Changes a pod's state (discovery conditions, ejection) and hands on any slot this frees. */
  setState(backend: Backend, state: BackendState): void {
    if (backend.state === state) return;
    if (backend.acceptsNewWork) this.working--;
    backend.state = state;
    if (backend.acceptsNewWork) this.working++;
    this.free.update(backend);
    for (const l of this.listeners) l.stateChanged?.(backend);
    if (!backend.servesSticky) this.queue.repinWaiters(backend);
    this.queue.onCapacity(backend);
  }

  /** Changes one pod's slot count (slow start, adaptive limits). */
  setLimit(backend: Backend, limit: number): void {
    backend.limit = limit;
    this.free.update(backend);
    this.queue.onCapacity(backend);
  }

  get slots(): number {
    return this.slotsPerEndpoint;
  }

  private add(info: EndpointInfo, state: BackendState): void {
    const backend = new Backend(info, this.slotsPerEndpoint, this.seedLatencyMs(), this.now());
    backend.state = state;
    backend.discovered = state;
    this.backendsByKey.set(backend.key, backend);
    if (backend.acceptsNewWork) this.working++;
    this.free.update(backend);
    for (const l of this.listeners) l.backendAdded?.(backend);
    this.queue.onCapacity(backend);
  }

  /**
   * A pod left the slices. With requests still on it, it is kept aside (their slots stay counted) and
   * forgotten when the last ends; if it returns first, it comes back with its count and what was
   * learned of it. Listeners hear `backendRemoved` only when it is forgotten.
   */
  private remove(backend: Backend): void {
    if (backend.acceptsNewWork) this.working--;
    backend.state = 'gone';
    this.free.remove(backend);
    this.backendsByKey.delete(backend.key);
    this.queue.repinWaiters(backend);
    if (backend.inflight > 0) this.leaving.set(backend.key, backend);
    else this.forget(backend);
  }

  private forget(backend: Backend): void {
    this.leaving.delete(backend.key);
    this.queue.forget(backend);
    for (const l of this.listeners) l.backendRemoved?.(backend);
  }

  /** A pod that left with requests on it and is back before they ended: the same Backend, state set by the caller. */
  private revive(key: string): Backend | undefined {
    const backend = this.leaving.get(key);
    if (!backend) return undefined;
    this.leaving.delete(key);
    this.backendsByKey.set(key, backend);
    return backend;
  }

  private occupy(backend: Backend, ticket: Ticket): void {
    backend.addInflight(1, ticket.grantedAtMs);
    this.inflight++;
    this.free.update(backend);
    const lease = new LocalLease(ticket, backend, ticket.grantedAtMs, ++ticket.grants, backend.inflight, backend.inflightArea, this.endLease);
    ticket.lease = lease;
    for (const l of this.startListeners) l.requestStarted!(backend, lease);
  }

  /** A new pod starts at the pool's average latency, so peak-EWMA neither floods nor starves it. */
  private seedLatencyMs(): number {
    let sum = 0;
    let n = 0;
    for (const b of this.backendsByKey.values()) {
      if (b.latency.hasSamples) {
        sum += b.latency.valueMs;
        n++;
      }
    }
    return n > 0 ? sum / n : DEFAULT_SEED_LATENCY_MS;
  }
}

/**
 * Endpoint conditions (EndpointSlice `ready`, `serving`, `terminating`) as a pod state; undefined for
 * a terminating pod that no longer serves, which leaves the pool as if it had left the slices.
 */
function stateOf(info: EndpointInfo): BackendState | undefined {
  if (info.ready) return 'ready';
  if (info.terminating) return info.serving ? 'draining' : undefined;
  return 'not-ready';
}
