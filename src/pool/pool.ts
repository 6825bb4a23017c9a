/**
 * One upstream pool's pods: discovery snapshots diffed in place, each pod's state and slots, and the
 * set of pods with a free slot. The pool owns pods and their counts; it knows nothing of waiters,
 * leases or pickers. Whoever admits requests (admission/admission.ts) takes and gives back slots with
 * `occupy` / `vacate`, and hears through `PoolEvents` when a slot may have freed or a pod was lost, so
 * the dependency runs one way: admission -> pool.
 */
import type { EndpointInfo } from '../discovery/types.js';
import { Backend, type BackendState } from './backend.js';
import { FreeSlots } from './free-slots.js';

export interface PoolOptions {
  readonly name: string;
  /** Slots per pod; Infinity: unlimited (no queue, every request goes straight to a pod). With `adaptive`: each pod's starting limit. */
  readonly slotsPerEndpoint: number;
  /** Per-pod limits are learned (`slotsPerEndpoint: auto`); set by the adaptive limiter through `setLimit`. */
  readonly adaptive?: boolean;
  readonly now?: () => number;
}

export type { Outcome } from './outcome.js';
export { isPodFailure } from './outcome.js';

/** Pod events for whoever watches the pool (stickiness, health, metrics, caches). */
export interface PoolListener {
  backendAdded?(backend: Backend): void;
  /** The pod left the slices and its last request ended: forget it. */
  backendRemoved?(backend: Backend): void;
  /** A pod's state changed (discovery, ejection). */
  stateChanged?(backend: Backend): void;
}

/** What the pool tells its admission: the one consumer of slot changes. */
export interface PoolEvents {
  /** A slot on `backend` may be free (a request ended, the pod joined, its limit or state changed). */
  capacity(backend: Backend): void;
  /** `backend` no longer serves sticky work (ejected, not ready, gone): its sticky waiters must move. */
  lost(backend: Backend): void;
  /** `backend` left and nothing runs on it any more. */
  forgotten(backend: Backend): void;
  /** No pod accepts new work after a discovery snapshot. */
  noneWorking(): void;
}

const NO_EVENTS: PoolEvents = { capacity() {}, lost() {}, forgotten() {}, noneWorking() {} };

/** Latency assumed for a pod before its first answer, when the pool has no measurements yet. */
const DEFAULT_SEED_LATENCY_MS = 100;

export class Pool {
  readonly name: string;
  readonly adaptive: boolean;
  readonly now: () => number;
  private readonly backendsByKey = new Map<string, Backend>();
  /** Pods that left the slices while requests still ran on them: kept, and revived if they return, until the last ends. */
  private readonly leaving = new Map<string, Backend>();
  /** Pods with a free slot that accept new work (what pickers choose among). */
  readonly free = new FreeSlots();
  private slotsPerEndpoint: number;
  private readonly listeners: PoolListener[] = [];
  private events: PoolEvents = NO_EVENTS;
  /** Pods accepting new work, whether or not a slot is free. */
  private working = 0;
  /** Requests holding a slot in this pool. */
  inflight = 0;
  /** Whether discovery has delivered its first snapshot. */
  synced = false;

  constructor(options: PoolOptions) {
    this.name = options.name;
    this.slotsPerEndpoint = options.slotsPerEndpoint;
    this.now = options.now ?? (() => performance.now());
    this.adaptive = options.adaptive ?? false;
  }

  /** Sets the pool's admission (one per pool). */
  attach(events: PoolEvents): void {
    this.events = events;
  }

  listen(listener: PoolListener): void {
    this.listeners.push(listener);
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

  get slots(): number {
    return this.slotsPerEndpoint;
  }

  /** One slot on `backend` is taken at `nowMs`. */
  occupy(backend: Backend, nowMs: number): void {
    backend.addInflight(1, nowMs);
    this.inflight++;
    this.free.update(backend);
  }

  /** One slot on `backend` is given back at `nowMs`. */
  vacate(backend: Backend, nowMs: number): void {
    backend.addInflight(-1, nowMs);
    this.inflight--;
    this.free.update(backend);
  }

  /** A pod that left is forgotten once its last request has ended (called after that request's listeners ran). */
  forgetIfIdle(backend: Backend): void {
    if (backend.state === 'gone' && backend.inflight === 0 && this.leaving.get(backend.key) === backend) this.forget(backend);
  }

  /** Takes a pod out of rotation (failures or probes); its sticky waiters follow their conversations. */
  eject(backend: Backend, by: 'passive' | 'health'): void {
    if (backend.state === 'gone' || backend.state === 'ejected') return;
    backend.ejectedBy = by;
    this.setState(backend, 'ejected');
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
    if (this.working === 0) this.events.noneWorking();
  }

  /** Changes a pod's state (discovery conditions, ejection) and hands on any slot this frees. */
  setState(backend: Backend, state: BackendState): void {
    if (backend.state === state) return;
    if (backend.acceptsNewWork) this.working--;
    backend.state = state;
    if (backend.acceptsNewWork) this.working++;
    this.free.update(backend);
    for (const l of this.listeners) l.stateChanged?.(backend);
    if (!backend.servesSticky) this.events.lost(backend);
    this.events.capacity(backend);
  }

  /** Caps how many of a pod's slots this replica may fill (cluster scheduling; Infinity: all). */
  setCap(backend: Backend, cap: number): void {
    if (backend.cap === cap) return;
    backend.cap = cap;
    this.free.update(backend);
    this.events.capacity(backend);
  }

  /** Changes one pod's slot count (slow start, adaptive limits). */
  setLimit(backend: Backend, limit: number): void {
    backend.limit = limit;
    this.free.update(backend);
    this.events.capacity(backend);
  }

  private add(info: EndpointInfo, state: BackendState): void {
    const backend = new Backend(info, this.slotsPerEndpoint, this.seedLatencyMs(), this.now());
    backend.state = state;
    backend.discovered = state;
    this.backendsByKey.set(backend.key, backend);
    if (backend.acceptsNewWork) this.working++;
    this.free.update(backend);
    for (const l of this.listeners) l.backendAdded?.(backend);
    this.events.capacity(backend);
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
    this.events.lost(backend);
    if (backend.inflight > 0) this.leaving.set(backend.key, backend);
    else this.forget(backend);
  }

  private forget(backend: Backend): void {
    this.leaving.delete(backend.key);
    this.events.forgotten(backend);
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
