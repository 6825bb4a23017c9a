/**
 * One upstream pod as the pool sees it: discovery facts plus the gateway's own accounting. Mutable
 * on purpose: the hot path updates counters in place instead of allocating snapshots per request.
 */
import type { EndpointInfo } from '../discovery/types.js';
import { PeakEwma } from '../load/peak-ewma.js';
import { fnv1a } from '../util/hash.js';

/**
 * ready: takes new work. not-ready: failing its readiness probe (a busy Rasa pod does) but not
 * terminating: takes nothing new, its conversations move as for an ejected pod, its in-flight work
 * finishes and stays counted, and it keeps what the gateway learned of it for when it returns.
 * draining: terminating but serving, keeps in-flight work and its sticky conversations only.
 * ejected: failed its health checks, takes nothing new. gone: left the slices; only requests already
 * on it still finish (and it is forgotten once the last has).
 */
export type BackendState = 'ready' | 'not-ready' | 'draining' | 'ejected' | 'gone';

export class Backend {
  readonly key: string;
  readonly origin: string;
  /** Hash of `key`, for rendezvous hashing and socket.io session tokens. */
  readonly hash: number;
  pod: string;
  zone: string | undefined;
  state: BackendState = 'ready';
  /** The state discovery reports; an ejected pod returns to it. */
  discovered: BackendState = 'ready';
  /** Why the pod is ejected: passive (its requests failed) or health (its probe failed). */
  ejectedBy: 'passive' | 'health' | undefined = undefined;
  /** While slow-starting: when the ramp ends (ms); 0 otherwise. */
  slowStartUntilMs = 0;
  inflight = 0;
  /**
   * The in-flight count integrated over time (request x ms) up to `inflightSinceMs`: a request's mean
   * concurrency on this pod is the growth of this over its life divided by its latency (Little's law).
   */
  inflightArea = 0;
  inflightSinceMs = 0;
  /** Slots: requests this pod may have in flight at once. Infinity when unlimited. */
  limit: number;
  /**
   * Of those, how many this replica may fill now (Infinity: all): set by cluster scheduling, to this
   * replica's share of the pod while it schedules alone, or to the slots left after peers it cannot
   * reach may be using theirs. `usable` is what admission counts against.
   */
  cap = Infinity;
  /** Sticky conversations currently assigned to this pod (maintained by the affinity table). */
  sessions = 0;
  /** Open long-lived connections (websockets), counted apart from requests. */
  sockets = 0;
  requests = 0;
  failures = 0;
  /** Consecutive failures, for passive ejection. */
  consecutiveFailures = 0;
  readonly latency: PeakEwma;
  /** Position in the load buckets, maintained by `FreeSlots`; -1 when not there. */
  bucket = -1;

  constructor(info: EndpointInfo, limit: number, seedLatencyMs: number, nowMs: number) {
    this.key = info.key;
    this.hash = fnv1a(info.key);
    this.origin = info.origin;
    this.pod = info.pod ?? new URL(info.origin).host;
    this.zone = info.zone;
    this.limit = limit;
    this.latency = new PeakEwma(seedLatencyMs, nowMs);
  }

  /** Changes the in-flight count by `delta` at `nowMs`, keeping `inflightArea` exact. */
  addInflight(delta: number, nowMs: number): void {
    this.inflightArea = this.areaAt(nowMs);
    this.inflightSinceMs = nowMs;
    this.inflight += delta;
  }

  /** `inflightArea` as of `nowMs`. */
  areaAt(nowMs: number): number {
    return this.inflightArea + this.inflight * (nowMs - this.inflightSinceMs);
  }

  /** Slots this replica may fill now: the pod's limit within the cluster's cap. */
  get usable(): number {
    return this.limit < this.cap ? this.limit : this.cap;
  }

  get hasFreeSlot(): boolean {
    return this.inflight < this.usable;
  }

  /** Whether new (non-sticky) work may go here. */
  get acceptsNewWork(): boolean {
    return this.state === 'ready';
  }

  /** Whether this pod's sticky conversations may still be served here. */
  get servesSticky(): boolean {
    return this.state === 'ready' || this.state === 'draining';
  }
}
