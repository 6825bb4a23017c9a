/**
 * The balancer seam. A balancer only chooses among pods that can take the request now; it never
 * measures. Load measures (in-flight count, peak-EWMA latency) live on the Backend and in `load/`,
 * so a new picker or a new metric is one small file each (tower's Load/picker split).
 */
import type { Backend } from '../pool/backend.js';

/** Pods with a free slot that accept new work. Every accessor is O(1). */
export interface Candidates {
  readonly size: number;
  at(index: number): Backend;
  /** A pod with the fewest requests in flight, ties broken at random. */
  fewestInflight(random: () => number): Backend | undefined;
}

/** What a balancer may read besides its candidates: the pool's clock (load estimates that decay with time). */
export interface BalancerContext {
  readonly now: () => number;
}

export interface Balancer {
  pick(candidates: Candidates, random: () => number): Backend | undefined;
}

export type BalancerName = 'round-robin' | 'random' | 'least-outstanding' | 'p2c' | 'peak-ewma';
