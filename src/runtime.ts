/** A pool with everything that serves it: its config, discovery source and metrics. */
import type { Affinity } from './affinity/affinity.js';
import type { PoolConfig } from './config.js';
import type { Discovery } from './discovery/types.js';
import type { PoolMetrics } from './metrics/metrics.js';
import type { Pool } from './pool/pool.js';
import type { RetryBudget } from './proxy/retry-budget.js';
import type { ParseCache } from './cache/parse-cache.js';
import type { PoolCapacity } from './capacity/pool-capacity.js';

export interface PoolRuntime {
  readonly pool: Pool;
  readonly config: PoolConfig;
  readonly discovery: Discovery;
  readonly metrics: PoolMetrics;
  /** Conversation stickiness, when the pool has `affinity: rasa`. */
  readonly affinity: Affinity | undefined;
  readonly retryBudget: RetryBudget;
  /** NLU parse cache, when the pool has `cache`. */
  readonly cache: ParseCache | undefined;
  /** The live capacity estimate (arrivals are counted by the request path as they reach admission). */
  readonly capacity?: PoolCapacity;
  /** reply-from options for this pool's requests (built once: the hot path allocates none). */
  readonly fromOptions: object;
}
