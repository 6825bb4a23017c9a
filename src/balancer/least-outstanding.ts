/** Least outstanding requests: the pod with the fewest in flight, ties at random (O(1) via load buckets). */
import type { Balancer } from './types.js';

export function leastOutstanding(): Balancer {
  return { pick: (candidates, random) => candidates.fewestInflight(random) };
}
