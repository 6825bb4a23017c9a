/** Peak-EWMA: p2c where a pod's load is its latency estimate x (in flight + 1), as in linkerd2-proxy. */
import { powerOfTwoChoices } from './p2c.js';
import type { Balancer, BalancerContext } from './types.js';

/** The estimate is read decayed to now (as tower does), so a pod that answered slowly once and was then left idle is tried again. */
export function peakEwma({ now }: BalancerContext): Balancer {
  return powerOfTwoChoices((b) => b.latency.valueAt(now()) * (b.inflight + 1));
}
