/** A pool with everything that serves it, as the request path sees it: its pods, admission, config, discovery source, stickiness, cache and metrics. */
import type { Affinity } from '../affinity/affinity.js';
import type { PoolConfig } from '../config.js';
import type { Discovery } from '../discovery/types.js';
import type { PoolMetrics } from '../metrics/metrics.js';
import type { Admission } from '../admission/admission.js';
import type { AdaptiveLimits } from '../admission/adaptive-slots.js';
import type { Pool } from '../pool/pool.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import type { RetryBudget } from './retry-budget.js';
import type { ParseCache } from '../cache/parse-cache.js';
import type { PoolCapacity } from '../capacity/pool-capacity.js';

export interface PoolRuntime {
  readonly pool: Pool;
  /** Where the pool's requests take and give back slots. */
  readonly admission: Admission;
  /** Where its requests get their conversation's turn and their slot (this replica's queue, or the cluster's). */
  readonly scheduler: Scheduler;
  /** Learned service times and slots, when the pool learns them (`auto`, or completion-aware dispatch). */
  readonly limits: AdaptiveLimits | undefined;
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
