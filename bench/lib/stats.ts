/**
 * Summary statistics for the bench. Percentiles are nearest-rank (the value at rank ceil(p*n)), so
 * "p95" always names a latency some request really had, and with 10 requests p95 is the maximum;
 * the ideal schedule is summarised the same way, so ratios compare like with like.
 */

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1] as number;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  return {
    n,
    min: sorted[0] ?? NaN,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted[n - 1] ?? NaN,
    mean: n === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / n,
  };
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = finite.length;
  if (n === 0) return NaN;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? (finite[mid] as number) : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}

/** The median of each statistic over repeats (not the statistics of the pooled samples). */
export function medianSummary(summaries: readonly Summary[]): Summary {
  const pick = (k: keyof Summary) => median(summaries.map((s) => s[k]));
  return { n: pick('n'), min: pick('min'), p50: pick('p50'), p95: pick('p95'), p99: pick('p99'), max: pick('max'), mean: pick('mean') };
}

/** Deterministic PRNG (mulberry32) so "random" spreading is the same in every run of a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Items grouped into consecutive windows of `widthMs` by their time (window k holds times in
 * [k*width, (k+1)*width)); `count` windows, or as many as the latest time needs. Times below 0 or
 * not finite are left out.
 */
export function windows<T>(items: readonly T[], timeOf: (x: T) => number, widthMs: number, count?: number): T[][] {
  let n = count ?? 0;
  if (count === undefined) for (const x of items) n = Math.max(n, Math.floor(timeOf(x) / widthMs) + 1);
  const out: T[][] = Array.from({ length: n }, () => []);
  for (const x of items) {
    const t = timeOf(x);
    if (!Number.isFinite(t) || t < 0) continue;
    out[Math.floor(t / widthMs)]?.push(x);
  }
  return out;
}
