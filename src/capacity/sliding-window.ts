/**
 * Count, sum and sum of squares of values over the last `windowMs`, in a ring of per-second buckets:
 * O(1) per observation on the request path (no sample arrays, no allocation), O(buckets) to read,
 * which happens at scrape time. A read covers the last ceil(windowMs / 1 s) whole seconds plus the
 * second in progress, so between windowMs and windowMs + 1 s of history (never a sliver of a second,
 * which would turn one arrival into a burst); rates divide by the span actually covered.
 */
const BUCKET_MS = 1000;

export interface WindowTotals {
  readonly count: number;
  readonly sum: number;
  readonly sumSq: number;
  /** Time the totals cover (ms): the window, or less while the window is still filling. */
  readonly spanMs: number;
}

export class SlidingWindow {
  private readonly seconds: Float64Array;
  private readonly counts: Float64Array;
  private readonly sums: Float64Array;
  private readonly squares: Float64Array;
  private readonly size: number;

  constructor(
    readonly windowMs: number,
    /** When observation started: the span covered never reaches back before it. */
    private readonly startMs: number,
  ) {
    this.size = Math.max(1, Math.ceil(windowMs / BUCKET_MS)) + 1;
    this.seconds = new Float64Array(this.size).fill(-1);
    this.counts = new Float64Array(this.size);
    this.sums = new Float64Array(this.size);
    this.squares = new Float64Array(this.size);
  }

  add(nowMs: number, value = 0): void {
    const second = Math.floor(nowMs / BUCKET_MS);
    const i = second % this.size;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.counts[i] = 0;
      this.sums[i] = 0;
      this.squares[i] = 0;
    }
    this.counts[i]! += 1;
    this.sums[i]! += value;
    this.squares[i]! += value * value;
  }

  totals(nowMs: number): WindowTotals {
    const newest = Math.floor(nowMs / BUCKET_MS);
    const oldest = newest - this.size + 1;
    let count = 0;
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < this.size; i++) {
      const s = this.seconds[i]!;
      if (s < oldest || s > newest) continue;
      count += this.counts[i]!;
      sum += this.sums[i]!;
      sumSq += this.squares[i]!;
    }
    const covered = nowMs - oldest * BUCKET_MS;
    return { count, sum, sumSq, spanMs: Math.max(1, Math.min(covered, nowMs - this.startMs)) };
  }
}
