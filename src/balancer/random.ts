/** Uniform random choice: what kube-proxy's iptables mode does per connection. */
import type { Balancer } from './types.js';

export function randomPick(): Balancer {
  return {
    pick(candidates, random) {
      return candidates.size === 0 ? undefined : candidates.at(Math.floor(random() * candidates.size));
    },
  };
}
