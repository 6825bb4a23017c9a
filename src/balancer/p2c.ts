/**
 * Power of two choices (Mitzenmacher): two distinct random candidates, the lower load wins. Nearly as
 * good as a full scan and O(1). The load function is the plug: in-flight count for `p2c`, latency-
 * weighted for `peak-ewma`.
 */
import type { Backend } from '../pool/backend.js';
import type { Balancer } from './types.js';

export type LoadOf = (backend: Backend) => number;

export const inflightLoad: LoadOf = (b) => b.inflight;

export function powerOfTwoChoices(load: LoadOf = inflightLoad): Balancer {
  return {
    pick(candidates, random) {
      const n = candidates.size;
      if (n <= 1) return n === 1 ? candidates.at(0) : undefined;
      const i = Math.floor(random() * n);
      let j = Math.floor(random() * (n - 1));
      if (j >= i) j++;
      const a = candidates.at(i);
      const b = candidates.at(j);
      return load(b) < load(a) ? b : a;
    },
  };
}
