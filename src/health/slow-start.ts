/**
 * Slow start: a pod that joins a running pool gets its slots one at a time over a window instead
 * of all at once, because a Rasa pod pays first-inference costs (lazy model parts, JIT, caches) after
 * it turns ready. The ramp ends early once its latency estimate is within 25 % of its peers' median.
 * Pods present at start-up skip it (nobody to protect them from). Unlimited-slot pools have no ramp, and
 * neither have adaptive (`auto`) ones: their limiter starts every pod at `minSlots` and is the ramp.
 */
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';

const TICK_MS = 250;

export class SlowStart {
  private readonly ramping = new Set<Backend>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly windowMs: number,
  ) {
    pool.listen({
      backendAdded: (b) => this.begin(b),
      backendRemoved: (b) => this.ramping.delete(b),
    });
  }

  private begin(backend: Backend): void {
    if (this.windowMs === 0 || this.pool.adaptive || !this.pool.synced || !Number.isFinite(this.pool.slots) || this.pool.slots <= 1) return;
    backend.slowStartUntilMs = this.pool.now() + this.windowMs;
    this.pool.setLimit(backend, 1);
    this.ramping.add(backend);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
  }

  private tick(): void {
    const now = this.pool.now();
    const peers = this.peerMedianLatencyMs();
    for (const b of this.ramping) {
      const caughtUp = peers !== undefined && b.latency.hasSamples && b.latency.valueMs <= peers * 1.25 && b.requests >= 3;
      const remaining = b.slowStartUntilMs - now;
      if (remaining <= 0 || caughtUp) {
        this.finish(b);
        continue;
      }
      const share = 1 - remaining / this.windowMs;
      const limit = Math.max(1, Math.ceil(this.pool.slots * share));
      if (limit !== b.limit) this.pool.setLimit(b, limit);
    }
    if (this.ramping.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private finish(backend: Backend): void {
    backend.slowStartUntilMs = 0;
    this.ramping.delete(backend);
    this.pool.setLimit(backend, this.pool.slots);
  }

  private peerMedianLatencyMs(): number | undefined {
    const values: number[] = [];
    for (const b of this.pool.backends) if (!this.ramping.has(b) && b.latency.hasSamples) values.push(b.latency.valueMs);
    if (values.length === 0) return undefined;
    values.sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)];
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
