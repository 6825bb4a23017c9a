/**
 * A service-time distribution as the capacity model needs it: its mean and coefficient of variation
 * (what the queue-wait approximation uses) and a set of weighted points (what the latency percentile
 * is computed from, latency being queue wait plus service).
 *
 * Three ways to get one: from the mean and cv alone (then a lognormal of those moments: service times
 * are positive and right-skewed, and it has a closed-form quantile; cv 0 is a constant), from measured
 * samples (their empirical distribution, thinned to at most `MAX_POINTS` points), or as a mixture of
 * route classes weighted by their arrival rates (a pool serving quick NLU parses and slow dialogue
 * turns has a wider distribution than either, which a single mean and cv per pool would hide).
 */
import { normalQuantile } from './normal-quantile.js';

export interface ServicePoint {
  readonly ms: number;
  /** Probability mass; the points of a distribution sum to 1. */
  readonly p: number;
}

export interface ServiceTime {
  readonly meanMs: number;
  /** Coefficient of variation: standard deviation / mean. */
  readonly cv: number;
  readonly points: readonly ServicePoint[];
}

/** Points of a lognormal fitted to the moments; enough for a p95 within a percent. */
const LOGNORMAL_POINTS = 64;
const MAX_POINTS = 256;

export function fromMoments(meanMs: number, cv: number): ServiceTime {
  if (!(meanMs > 0)) throw new RangeError(`a service time needs a positive mean, got ${meanMs}`);
  if (!(cv >= 0)) throw new RangeError(`a coefficient of variation is not negative, got ${cv}`);
  if (cv === 0) return { meanMs, cv, points: [{ ms: meanMs, p: 1 }] };
  const sigma = Math.sqrt(Math.log(1 + cv * cv));
  const mu = Math.log(meanMs) - (sigma * sigma) / 2;
  const points = Array.from({ length: LOGNORMAL_POINTS }, (_, i) => ({
    ms: Math.exp(mu + sigma * normalQuantile((i + 0.5) / LOGNORMAL_POINTS)),
    p: 1 / LOGNORMAL_POINTS,
  }));
  return { meanMs, cv, points };
}

export function fromSamples(samplesMs: readonly number[]): ServiceTime {
  if (samplesMs.length === 0) throw new RangeError('no service-time samples');
  const n = samplesMs.length;
  const mean = samplesMs.reduce((s, x) => s + x, 0) / n;
  const variance = samplesMs.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const k = Math.min(n, MAX_POINTS);
  const points = Array.from({ length: k }, (_, i) => ({ ms: sorted[Math.floor(((i + 0.5) * n) / k)] as number, p: 1 / k }));
  return { meanMs: mean, cv: mean > 0 ? Math.sqrt(variance) / mean : 0, points };
}

/** The distribution of a request drawn from the parts in proportion to their weights (arrival rates). */
export function mixture(parts: readonly { readonly weight: number; readonly service: ServiceTime }[]): ServiceTime {
  const used = parts.filter((x) => x.weight > 0);
  const total = used.reduce((s, x) => s + x.weight, 0);
  if (!(total > 0)) throw new RangeError('a mixture needs a part with positive weight');
  if (used.length === 1) return (used[0] as { service: ServiceTime }).service;
  let mean = 0;
  let second = 0;
  for (const { weight, service } of used) {
    const share = weight / total;
    mean += share * service.meanMs;
    second += share * service.meanMs ** 2 * (1 + service.cv ** 2);
  }
  const points = used.flatMap(({ weight, service }) => service.points.map((x) => ({ ms: x.ms, p: (x.p * weight) / total })));
  return { meanMs: mean, cv: Math.sqrt(Math.max(0, second / mean ** 2 - 1)), points };
}
