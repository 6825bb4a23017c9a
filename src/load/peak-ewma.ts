/**
 * Peak-EWMA latency estimate (Finagle, linkerd2-proxy's tower `PeakEwma`): a spike is taken at once,
 * improvement decays in with time constant `decayMs`, so a pod that just got slow stops getting work
 * immediately while one that recovers earns it back gradually. The picker combines it with the
 * in-flight count: cost = latency x (in flight + 1), the latency read decayed to the present.
 */
export class PeakEwma {
  private estimateMs: number;
  private stampMs: number;
  private samples = 0;

  constructor(
    seedMs: number,
    nowMs: number,
    private readonly decayMs = 10_000,
  ) {
    this.estimateMs = seedMs;
    this.stampMs = nowMs;
  }

  get hasSamples(): boolean {
    return this.samples > 0;
  }

  observe(rttMs: number, nowMs: number): void {
    this.samples++;
    if (rttMs > this.estimateMs) {
      this.estimateMs = rttMs;
    } else {
      const elapsed = Math.max(0, nowMs - this.stampMs);
      const w = Math.exp(-elapsed / this.decayMs);
      this.estimateMs = this.estimateMs * w + rttMs * (1 - w);
    }
    this.stampMs = nowMs;
  }

  /** The estimate as of the last sample (the seed for new pods, what the status page shows). */
  get valueMs(): number {
    return this.estimateMs;
  }

  /**
   * The estimate read at `nowMs`, decayed as if a zero-latency sample had arrived (tower's read): a
   * pod that answered slowly once is not penalised for ever because, being penalised, it never gets
   * the next sample that would clear it. Reading changes nothing.
   */
  valueAt(nowMs: number): number {
    const elapsed = nowMs - this.stampMs;
    return elapsed > 0 ? this.estimateMs * Math.exp(-elapsed / this.decayMs) : this.estimateMs;
  }
}
