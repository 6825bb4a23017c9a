/**
 * The live capacity estimate of one pool: what the pool is asked to do (arrival rate per route
 * class over a sliding window) and what its pods take to do it (service time per route class, from
 * completed leases), turned by the queue model into the pods the pool needs (the metric
 * `gateway_pool_desired_pods`, the status page, `GET /debug/capacity`, `rasa-gateway plan --from`).
 *
 * Service time is a lease's slot-hold time (grant to release, what occupies a server in the model)
 * of attempts the pod answered (`ok`): refusals and client aborts would make pods look fast. It is
 * heard through the pool's listener seam, like every other learner. Arrivals are counted by the
 * request path as requests reach admission (after the parse cache, which needs no pod), so requests
 * the queue later refuses still count: they are load the pool failed to serve.
 *
 * The two move at different speeds, so they are measured over different windows: the arrival rate
 * over `windowMs` (it changes with every ramp), service times over `SERVICE_WINDOWS` of them (a
 * pod's service time is a property of its model and node; measured over a short window, a second
 * of stall, a GC pause or a noisy neighbour, stretches every request in flight and the estimate
 * jumps by pods the pool does not need, as `npm run bench -- autoscale` showed).
 *
 * Route classes (Rasa's route kinds: `model` for /model/parse, `webhook`, `conversation`, ...) are
 * kept apart and mixed by their rates, so a pool serving 40 ms parses and 2 s dialogue turns is
 * modelled with the spread of both. Hot path: a map lookup and a bucket increment; everything else
 * runs when someone reads the estimate.
 */
import type { Ticket } from '../admission/ticket.js';
import type { Admission } from '../admission/admission.js';
import type { Pool } from '../pool/pool.js';
import { desiredPods, latencyQuantileMs, type PodProfile } from './queue-model.js';
import { fromMoments, mixture, type ServiceTime } from './service-time.js';
import { SlidingWindow, type WindowTotals } from './sliding-window.js';

export interface CapacityConfig {
  /** The p95 queue wait the desired pod count keeps to. */
  readonly targetQueueWaitMs: number;
  /** Time allowed to drain a backlog beyond the steady-state queue. */
  readonly horizonMs: number;
  /** The sliding window of the arrival rate; service times use SERVICE_WINDOWS of them. */
  readonly windowMs: number;
}

export const DEFAULT_CLASS = 'all';

/** Service times are measured over this many rate windows (30 s -> 5 min by default). */
export const SERVICE_WINDOWS = 10;

export interface ClassEstimate {
  readonly name: string;
  readonly ratePerS: number;
  readonly meanMs: number | null;
  readonly cv: number | null;
  /** Answered attempts in the window. */
  readonly completions: number;
}

export interface CapacitySnapshot {
  readonly pool: string;
  readonly ratePerS: number;
  /** The pool's service time, mixed over its route classes; null before any answer. */
  readonly service: { readonly meanMs: number; readonly cv: number } | null;
  readonly classes: readonly ClassEstimate[];
  /** Slots per pod the model uses; null when the pool's slots are unlimited (no model then). */
  readonly slots: number | null;
  /** Pods taking new work now. */
  readonly currentPods: number;
  readonly queueLength: number;
  /** Null only with unlimited slots. */
  readonly desiredPods: number | null;
  /** The parts of the answer (see queue-model.ts): for the wait target, and for arrivals + backlog. */
  readonly forWait: number | null;
  readonly forBacklog: number | null;
  /** The p95 latency the model expects at the current pod count (ms); Infinity when overloaded. */
  readonly expectedP95Ms: number | null;
  readonly config: CapacityConfig;
  readonly windowMs: number;
}

interface RouteClass {
  readonly arrivals: SlidingWindow;
  readonly service: SlidingWindow;
  /** Every answer since the class appeared: the service time when the window has none (idle, or no pod left). */
  readonly lifetime: { count: number; sum: number; sumSq: number };
}

export interface PoolCapacityOptions {
  /** The route class of an admitted request (default: one class for everything). */
  readonly classOf?: (ticket: Ticket) => string;
}

export class PoolCapacity {
  private readonly classes = new Map<string, RouteClass>();
  private readonly classOf: (ticket: Ticket) => string;

  private readonly pool: Pool;

  constructor(
    private readonly admission: Admission,
    readonly config: CapacityConfig,
    options: PoolCapacityOptions = {},
  ) {
    const pool = (this.pool = admission.pool);
    this.classOf = options.classOf ?? (() => DEFAULT_CLASS);
    admission.listen({
      requestEnded: (_backend, outcome, _latencyMs, lease) => {
        if (outcome !== 'ok') return;
        const now = pool.now();
        const c = this.classNamed(this.classOf(lease.holder));
        const ms = now - lease.grantedAtMs;
        c.service.add(now, ms);
        c.lifetime.count++;
        c.lifetime.sum += ms;
        c.lifetime.sumSq += ms * ms;
      },
    });
  }

  /** A request of `routeClass` reached admission (hot path). */
  arrived(routeClass = DEFAULT_CLASS): void {
    this.classNamed(routeClass).arrivals.add(this.pool.now());
  }

  private classNamed(name: string): RouteClass {
    let c = this.classes.get(name);
    if (!c) {
      const now = this.pool.now();
      c = { arrivals: new SlidingWindow(this.config.windowMs, now), service: new SlidingWindow(this.config.windowMs * SERVICE_WINDOWS, now), lifetime: { count: 0, sum: 0, sumSq: 0 } };
      this.classes.set(name, c);
    }
    return c;
  }

  /** Slots per pod: the configured number, or the mean of the learned ones with `auto`. */
  private slotsPerPod(): number | null {
    const pool = this.pool;
    if (!Number.isFinite(pool.slots)) return null;
    if (!pool.adaptive) return pool.slots;
    let sum = 0;
    let n = 0;
    for (const b of pool.backends) {
      if (!b.acceptsNewWork || !Number.isFinite(b.limit)) continue;
      sum += b.limit;
      n++;
    }
    return n > 0 ? sum / n : pool.slots;
  }

  snapshot(): CapacitySnapshot {
    const now = this.pool.now();
    const classes: ClassEstimate[] = [];
    const parts: { weight: number; service: ServiceTime }[] = [];
    let ratePerS = 0;
    for (const [name, c] of this.classes) {
      const arrivals = c.arrivals.totals(now);
      const rate = (arrivals.count * 1000) / arrivals.spanMs;
      const served = c.service.totals(now);
      const service = moments(served) ?? moments(c.lifetime);
      ratePerS += rate;
      classes.push({ name, ratePerS: rate, meanMs: service?.meanMs ?? null, cv: service?.cv ?? null, completions: served.count });
      if (service) parts.push({ weight: rate, service: fromMoments(service.meanMs, service.cv) });
    }
    // With no arrival in the window, the classes still answering weigh equally.
    const weighted = parts.some((x) => x.weight > 0) ? parts : parts.map((x) => ({ ...x, weight: 1 }));
    const service = weighted.length > 0 ? mixture(weighted) : undefined;
    const slots = this.slotsPerPod();
    const currentPods = this.pool.workingCount;
    const queueLength = this.admission.ownWaiting;
    const base = { pool: this.pool.name, ratePerS, classes, slots, currentPods, queueLength, config: this.config, windowMs: this.config.windowMs };
    if (slots === null) return { ...base, service: null, desiredPods: null, forWait: null, forBacklog: null, expectedP95Ms: null };
    if (!service) {
      // Nothing answered yet: keep what runs, and at least one pod while there is work to learn from.
      const desired = ratePerS > 0 || queueLength > 0 ? Math.max(currentPods, 1) : 0;
      return { ...base, service: null, desiredPods: desired, forWait: null, forBacklog: null, expectedP95Ms: null };
    }
    const profile: PodProfile = { service, slots };
    const desired = desiredPods({ ratePerS, profile, queueLength, targetWaitMs: this.config.targetQueueWaitMs, horizonMs: this.config.horizonMs });
    return {
      ...base,
      service: { meanMs: service.meanMs, cv: service.cv },
      desiredPods: desired.pods,
      forWait: desired.forWait,
      forBacklog: desired.forBacklog,
      expectedP95Ms: currentPods > 0 ? latencyQuantileMs(ratePerS, profile, currentPods, 0.95) : null,
    };
  }
}

function moments(t: Pick<WindowTotals, 'count' | 'sum' | 'sumSq'>): { meanMs: number; cv: number } | undefined {
  if (t.count === 0) return undefined;
  const meanMs = t.sum / t.count;
  if (!(meanMs > 0)) return undefined;
  const variance = Math.max(0, t.sumSq / t.count - meanMs * meanMs);
  return { meanMs, cv: Math.sqrt(variance) / meanMs };
}
