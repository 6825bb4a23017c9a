/**
 * Adaptive per-pod slots applied to a pool: one `PodLimiter` (load/concurrency-limit.ts: how a limit
 * is learned) per pod, fed by the pool's lease outcomes, its limits applied with `Pool.setLimit`. It
 * keeps its per-pod data itself and is the `ServiceProfile` completion-aware dispatch plans with: each
 * pod's learned service time and the slots it runs in parallel (proven ones, plus one on trial while in
 * slow start, so the next slot is really tried).
 */
import { PodLimiter, type LimiterOptions } from '../load/concurrency-limit.js';
import type { Backend } from '../pool/backend.js';
import type { Outcome } from '../pool/outcome.js';
import type { Pool } from '../pool/pool.js';
import type { Admission } from './admission.js';
import type { ServiceProfile } from './earliest-completion.js';
import type { LocalLease } from './lease.js';

export interface AdaptiveLimitsOptions extends LimiterOptions {
  /** Apply the learned limits (`auto`); false: only learn service times (completion-aware static pools). */
  readonly adjust: boolean;
}

/** One limiter per pod of a pool, fed by the pool's completions, applied with `Pool.setLimit`. */
export class AdaptiveLimits implements ServiceProfile {
  private readonly pods = new Map<Backend, PodLimiter>();
  private readonly pool: Pool;

  constructor(
    admission: Admission,
    private readonly options: AdaptiveLimitsOptions,
  ) {
    const pool = (this.pool = admission.pool);
    for (const b of pool.backends) this.add(b);
    pool.listen({
      backendAdded: (b) => this.add(b),
      backendRemoved: (b) => this.pods.delete(b),
    });
    admission.useProfile(this);
    admission.listen({
      requestStarted: (b, lease) => {
        const limiter = this.pods.get(b);
        lease.limiterRound = limiter ? limiter.started(this.pool.now()) : 0;
      },
      requestEnded: (b, outcome, latencyMs, lease) => this.ended(b, outcome, latencyMs, lease),
    });
  }

  serviceMs(backend: Backend): number {
    return this.pods.get(backend)?.serviceMs ?? 0;
  }

  parallelSlots(backend: Backend): number {
    const limiter = this.pods.get(backend);
    if (!limiter || !this.options.adjust) return Infinity;
    return limiter.proven + (limiter.slowStart ? 1 : 0);
  }

  /** Slots the pod has been seen to run at once without queueing; undefined when limits are not learned. */
  provenSlots(backend: Backend): number | undefined {
    return this.options.adjust ? this.pods.get(backend)?.proven : undefined;
  }

  /** The limiter of one pod (tests, debugging). */
  of(backend: Backend): PodLimiter | undefined {
    return this.pods.get(backend);
  }

  private add(backend: Backend): void {
    const limiter = new PodLimiter(this.options, this.pool.now());
    this.pods.set(backend, limiter);
    this.apply(backend, limiter);
  }

  private ended(backend: Backend, outcome: Outcome, latencyMs: number | undefined, lease: LocalLease): void {
    if (outcome !== 'ok' || latencyMs === undefined) return;
    const limiter = this.pods.get(backend);
    if (!limiter) return;
    limiter.observe(latencyMs, meanConcurrency(backend, lease, this.pool.now()), this.pool.now(), lease.limiterRound);
    this.apply(backend, limiter);
  }

  /** Applies the learned limit to the pod (static pools only learn service times). */
  private apply(backend: Backend, limiter: PodLimiter): void {
    if (!this.options.adjust) return;
    if (backend.limit !== limiter.limit) this.pool.setLimit(backend, limiter.limit);
  }
}

/**
 * The pod's mean in-flight count over the request's life (Little's law), this request included: what it
 * really shared the pod with. The count at the grant alone would credit a request sent just before
 * another ended with a concurrency the pod never ran.
 */
function meanConcurrency(backend: Backend, lease: LocalLease, nowMs: number): number {
  const lifeMs = nowMs - lease.grantedAtMs;
  if (!(lifeMs > 0)) return lease.grantedInflight;
  return (backend.areaAt(nowMs) - lease.grantedArea) / lifeMs;
}
