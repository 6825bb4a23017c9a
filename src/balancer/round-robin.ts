/** Round-robin: the Kubernetes-like baseline (kube-proxy spreads connections about evenly, blind to load). */
import type { Balancer, Candidates } from './types.js';

export function roundRobin(): Balancer {
  let cursor = 0;
  return {
    pick(candidates: Candidates) {
      if (candidates.size === 0) return undefined;
      cursor = (cursor + 1) % candidates.size;
      return candidates.at(cursor);
    },
  };
}
