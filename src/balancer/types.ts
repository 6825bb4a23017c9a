/**
 * The balancer seam. A balancer only chooses among pods that can take the request now; it never
 * measures. Load measures (in-flight count, peak-EWMA latency) live on the Backend and in `load/`,
 * so a new picker or a new metric is one small file each (tower's Load/picker split).
 */
import type { Backend } from '../pool/backend.js';
import type { Candidates } from '../pool/free-slots.js';

export type { Candidates } from '../pool/free-slots.js';

/** What a balancer may read besides its candidates: the pool's clock (load estimates that decay with time). */
export interface BalancerContext {
  readonly now: () => number;
}

export interface Balancer {
  pick(candidates: Candidates, random: () => number): Backend | undefined;
}

export type { BalancerName } from '../config-schema.js';
