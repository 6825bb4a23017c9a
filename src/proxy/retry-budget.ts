/**
 * Retry budget (as in Envoy and linkerd): retries may add at most a share of the recent request
 * rate, plus a small floor, so retries cannot multiply load on a pool that is failing. Each first
 * attempt deposits `percent`/100 of a token; each retry spends one; the floor refills with time.
 */
export class RetryBudget {
  private tokens: number;
  private stampMs: number;
  private readonly cap: number;

  constructor(
    private readonly percent: number,
    private readonly minPerSecond: number,
    private readonly now: () => number,
  ) {
    this.cap = Math.max(10, minPerSecond * 10);
    this.tokens = minPerSecond;
    this.stampMs = now();
  }

  deposit(): void {
    if (this.tokens < this.cap) this.tokens += this.percent / 100;
  }

  trySpend(): boolean {
    const now = this.now();
    const refill = ((now - this.stampMs) / 1000) * this.minPerSecond;
    this.stampMs = now;
    this.tokens = Math.min(this.cap, this.tokens + refill);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
