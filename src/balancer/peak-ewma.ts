/** Peak-EWMA: p2c where a pod's load is its latency estimate x (in flight + 1), as in linkerd2-proxy. */
import { powerOfTwoChoices } from './p2c.js';
import type { Balancer } from './types.js';

export function peakEwma(): Balancer {
  return powerOfTwoChoices((b) => b.latency.valueMs * (b.inflight + 1));
}
