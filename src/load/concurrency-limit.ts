/**
 * Adaptive per-pod slots (`slotsPerEndpoint: auto`, issue 9): each pod's limit is learned from its own
 * latency as its in-flight count varies, so nobody has to guess HAProxy's `maxconn` for a cluster of
 * 2-core and 4-core nodes. A Rasa pod runs K requests at once and queues the rest FIFO inside, so its
 * latency is about base x ceil(inflight / K): flat up to K, then a whole service time more per extra
 * round. That is TCP Vegas' signal (and Netflix's gradient limiter's): compare recent latency with the
 * no-load latency; grow while they match and the pod is using its limit, shrink when they part.
 *
 * - No-load latency: a windowed minimum of samples (two half-windows, so it is forgotten after
 *   `windowMs` and a pod that got slower for good is re-learned).
 * - Service time: the mean of unqueued samples (within `tolerance` of the minimum), so noise in
 *   service times does not read as queueing.
 * - Rounds: the first `limit` requests granted after a round begins, judged once all have answered
 *   (about one service time when the pod is busy; at most three service times). Vegas' diff =
 *   inflight x (1 - service / average): the requests waiting inside the pod (Little's law). Half a
 *   request or more: shrink to inflight x service / average, the pod's slots by the same law (the
 *   gradient). No queueing and the pod used its limit: grow, x1.5 per round in slow start (a new pod,
 *   or after re-learning) until the first shrink, then by one.
 * - "inflight" is each request's mean in-flight count over its life (the pod's in-flight count
 *   integrated over time, `Backend.inflightArea`), not the count at its grant: completion-aware dispatch
 *   times a request past the proven slots to start as one frees, so it is granted beside `limit - 1`
 *   others but runs beside fewer; counted at the grant it would "prove" a slot the pod does not have
 *   (a 4-slot pod proven at 5 under 3 % service-time noise, and the plan then overloading it).
 * - Probing costs a queued request, so a limit that just showed queueing is not tried again for a hold
 *   that doubles while probes keep failing (BBR-like), and resets once one succeeds or the pod changes.
 *   Proven slots (the highest limit with a clean round, `proven`) tell completion-aware
 *   dispatch which slots are a probe: it expects a request there to queue inside the pod, so a slow
 *   pod is probed only when even that finishes a request first. In slow start one slot past the proven
 *   ones is planned as a server on trial, so the next slot is really tried
 *   (a round that ran beside no more requests than before proves nothing); a failed trial costs one
 *   request a wait inside the pod and ends slow start.
 * - Each gateway replica learns alone from its own requests; replicas sharing pods see each other's
 *   queueing and settle on shares of a pod's slots, as TCP flows share a link.
 * - Samples that cannot be queueing behind our own requests (more than 2 x the mean in-flight count over
 *   base) are outliers or heavier work: ignored, unless they persist (the work or the pod changed:
 *   re-learn). Samples under 10 ms or far below base (GET /version beside model calls) say nothing
 *   about capacity and are ignored (the latter unless nothing else comes for a whole window); a pool
 *   whose requests all answer in under 10 ms stays at `minSlots`.
 *
 * Deterministic: time comes in as arguments, nothing runs on timers; state changes on each sample.
 * Per pod, fed by admission/adaptive-slots.ts, which applies the limits and publishes what is learned
 * to completion-aware dispatch.
 */

export interface LimiterOptions {
  readonly minSlots: number;
  readonly maxSlots: number;
  /** How long the no-load latency is remembered. */
  readonly windowMs?: number;
  /** Latency within this share above the minimum counts as unqueued, for the service time (service-time noise). */
  readonly tolerance?: number;
  /** First hold before a limit that showed queueing is probed again; doubles up to `maxProbeHoldMs`. */
  readonly probeHoldMs?: number;
  readonly maxProbeHoldMs?: number;
}

const DEFAULTS = { windowMs: 30_000, tolerance: 0.2, probeHoldMs: 3_000, maxProbeHoldMs: 60_000 };
/**
 * Answers faster than this say nothing about a Rasa pod's capacity: its model calls take tens to
 * hundreds of ms, while `GET /version` or a tracker read takes about the gateway's own overhead.
 */
const MIN_SAMPLE_MS = 10;
/** Samples below this share of base are a cheaper kind of request. */
const CHEAP = 0.25;
/** Unexplained samples in a row that mean the pod or its work changed. */
const UNEXPLAINED_RUN = 3;
/** Requests estimated waiting inside the pod (Vegas' diff) that count as queueing. */
const QUEUED = 0.5;
/** A round with samples ends after this many service times even if short of `limit` samples. */
const ROUND_SERVICE_TIMES = 3;
/** Slow-start growth per clean round (at least one more). */
const SLOW_START_GROWTH = 1.5;
/**
 * A sample uses the round's limit when its mean concurrency is within this of it: a pod kept full still
 * dips below its limit for a moment after each release, before the next grant.
 */
const SATURATED_SLACK = 0.25;
/** Weight of a new sample in the service-time average. */
const SERVICE_ALPHA = 0.2;

/** The limit of one pod. Pure: feed it samples, read `limit`, `baseMs` and `serviceMs`. */
export class PodLimiter {
  limit: number;
  /** No-load latency (ms): the windowed minimum; 0 before the first sample. */
  baseMs = 0;
  /** Average latency of unqueued requests (ms): what a request costs here; 0 before the first sample. */
  serviceMs = 0;
  /** Slots seen in use at once without queueing (a clean round at that limit); the rest is a probe. */
  proven: number;
  /** Whether the limit still grows x1.5 per clean round (until the first sign of queueing). */
  slowStart = true;
  private readonly windowMs: number;
  private readonly tolerance: number;
  private readonly probeHoldMs: number;
  private readonly maxProbeHoldMs: number;
  private curMin = Infinity;
  private curStartMs: number;
  private prevMin = Infinity;
  private roundLimit: number;
  /**
   * A round's samples are the first `roundLimit` requests granted after it began (earlier ones ran under
   * another limit), and it ends when they have all answered: ending at the first `roundLimit` answers
   * instead would keep the fastest and drop the ones that queued.
   */
  private roundStartMs: number;
  private roundId = 1;
  private roundMembers = 0;
  private roundCount = 0;
  private roundRatio = 0;
  private roundInflight = 0;
  private roundSaturated = 0;
  /** A limit that showed queueing, not probed before `ceilingUntilMs`. */
  private ceiling = Infinity;
  private ceilingUntilMs = 0;
  private holdMs: number;
  private unexplained = 0;
  private lastHeavyMs: number;
  private cheapMin = Infinity;

  constructor(
    private readonly options: LimiterOptions,
    nowMs: number,
  ) {
    this.windowMs = options.windowMs ?? DEFAULTS.windowMs;
    this.tolerance = options.tolerance ?? DEFAULTS.tolerance;
    this.probeHoldMs = options.probeHoldMs ?? DEFAULTS.probeHoldMs;
    this.maxProbeHoldMs = options.maxProbeHoldMs ?? DEFAULTS.maxProbeHoldMs;
    this.holdMs = this.probeHoldMs;
    this.limit = options.minSlots;
    this.proven = options.minSlots;
    this.roundLimit = this.limit;
    this.roundStartMs = nowMs;
    this.curStartMs = nowMs;
    this.lastHeavyMs = nowMs;
  }

  /** A request was granted on the pod: returns the round it is a sample of (0: none), for `observe`. */
  started(nowMs: number): number {
    if (nowMs < this.roundStartMs || this.roundMembers >= this.roundLimit) return 0;
    this.roundMembers++;
    return this.roundId;
  }

  /**
   * A request ended well after `latencyMs`; `inflight` is the pod's mean in-flight count over the
   * request's life (itself included); `round` what `started` returned for it. Returns the (possibly new) limit.
   */
  observe(latencyMs: number, inflight: number, nowMs: number, round = 0): number {
    if (!(latencyMs >= MIN_SAMPLE_MS)) return this.limit;
    const l = latencyMs;
    const n = Math.max(1, inflight);
    if (this.baseMs === 0) {
      this.relearn(l, nowMs, false);
    } else if (l < this.baseMs * CHEAP) {
      this.cheapMin = Math.min(this.cheapMin, l);
      if (nowMs - this.lastHeavyMs < this.windowMs) return this.limit;
      // Only cheaper requests for a whole window: the pod got faster or its work changed.
      this.relearn(this.cheapMin, nowMs, false);
    } else if (l > this.baseMs * n * 2) {
      // Slower than queueing behind our own requests could make it.
      const runaway = l > this.baseMs * this.options.maxSlots * 2;
      if (!runaway && ++this.unexplained < UNEXPLAINED_RUN) return this.limit;
      this.relearn(l, nowMs, true);
      return this.limit;
    }
    this.unexplained = 0;
    this.lastHeavyMs = nowMs;
    this.cheapMin = Infinity;
    this.addBase(l, nowMs);
    // The service time is the mean of unqueued samples: noise in service times cancels out of the ratio.
    if (l <= this.baseMs * (1 + this.tolerance)) this.serviceMs = this.serviceMs === 0 ? l : this.serviceMs + SERVICE_ALPHA * (l - this.serviceMs);
    if (this.serviceMs < this.baseMs) this.serviceMs = this.baseMs;
    if (round === this.roundId) {
      this.roundCount++;
      this.roundRatio += l / this.serviceMs;
      this.roundInflight += n;
      if (n >= this.roundLimit - SATURATED_SLACK) this.roundSaturated++;
    }
    const complete = this.roundMembers >= this.roundLimit && this.roundCount >= this.roundMembers;
    // A member that failed never answers: a round also ends after a few service times.
    if (complete || nowMs - this.roundStartMs >= ROUND_SERVICE_TIMES * this.serviceMs) {
      if (this.roundCount > 0) this.endRound(nowMs);
      else this.newRound(nowMs);
    }
    return this.limit;
  }

  private endRound(nowMs: number): void {
    const ratio = this.roundRatio / this.roundCount;
    const inflight = this.roundInflight / this.roundCount;
    const queued = inflight * (1 - 1 / ratio);
    const saturated = this.roundCount >= this.roundLimit && this.roundSaturated * 2 >= this.roundCount;
    if (queued >= QUEUED) {
      const target = Math.min(this.limit - 1, Math.round(inflight / ratio));
      const next = Math.max(this.options.minSlots, target);
      if (next === this.roundLimit - 1) {
        // The limit we just reached queues: a failed probe. Hold it off, longer each time.
        if (this.ceiling === this.roundLimit) this.holdMs = Math.min(this.maxProbeHoldMs, this.holdMs * 2);
        this.ceiling = this.roundLimit;
        this.ceilingUntilMs = nowMs + this.holdMs;
      }
      this.slowStart = false;
      this.setLimit(next);
      this.proven = this.limit;
      // What queued inside the pod under the old limit drains for about one service time: a round that
      // starts now would count that queueing again.
      this.newRound(nowMs + this.serviceMs);
      return;
    } else if (queued < QUEUED / 2 && saturated) {
      this.proven = Math.max(this.proven, this.roundLimit);
      if (this.roundLimit >= this.ceiling) {
        // A probe at the old ceiling passed: the pod can do more than it showed.
        this.ceiling = Infinity;
        this.holdMs = this.probeHoldMs;
      }
      if (this.slowStart) this.setLimit(Math.max(this.limit + 1, Math.ceil(this.limit * SLOW_START_GROWTH)));
      else if (this.limit + 1 < this.ceiling || nowMs >= this.ceilingUntilMs) this.setLimit(this.limit + 1);
    }
    this.newRound(nowMs);
  }

  private newRound(nowMs: number): void {
    this.roundId++;
    this.roundMembers = 0;
    this.roundLimit = this.limit;
    this.roundStartMs = nowMs;
    this.roundCount = 0;
    this.roundRatio = 0;
    this.roundInflight = 0;
    this.roundSaturated = 0;
  }

  /** The pod's work or speed changed: start the no-load latency from this sample (and the limit over). */
  private relearn(latencyMs: number, nowMs: number, restart: boolean): void {
    this.curMin = latencyMs;
    this.prevMin = Infinity;
    this.curStartMs = nowMs;
    this.baseMs = latencyMs;
    this.serviceMs = latencyMs;
    this.unexplained = 0;
    this.cheapMin = Infinity;
    this.lastHeavyMs = nowMs;
    this.ceiling = Infinity;
    this.holdMs = this.probeHoldMs;
    if (restart) {
      this.slowStart = true;
      this.setLimit(this.options.minSlots);
      this.proven = this.limit;
    }
    this.newRound(nowMs);
  }

  private addBase(latencyMs: number, nowMs: number): void {
    const age = nowMs - this.curStartMs;
    if (age >= this.windowMs / 2) {
      this.prevMin = age >= this.windowMs ? Infinity : this.curMin;
      this.curMin = latencyMs;
      this.curStartMs = nowMs;
    } else if (latencyMs < this.curMin) {
      this.curMin = latencyMs;
    }
    const base = Math.min(this.curMin, this.prevMin);
    // A pod that changed speed makes old probe failures meaningless.
    if (base < this.baseMs * 0.8 || base > this.baseMs * 1.25) {
      this.ceiling = Infinity;
      this.holdMs = this.probeHoldMs;
    }
    this.baseMs = base;
  }

  private setLimit(limit: number): void {
    this.limit = Math.min(this.options.maxSlots, Math.max(this.options.minSlots, limit));
  }
}
