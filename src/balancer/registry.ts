/** Balancer names (the `balancer` config key) mapped to their factories. */
import { leastOutstanding } from './least-outstanding.js';
import { powerOfTwoChoices } from './p2c.js';
import { peakEwma } from './peak-ewma.js';
import { randomPick } from './random.js';
import { roundRobin } from './round-robin.js';
import type { Balancer, BalancerContext, BalancerName } from './types.js';

export const balancers: Record<BalancerName, (context: BalancerContext) => Balancer> = {
  'round-robin': roundRobin,
  random: randomPick,
  'least-outstanding': leastOutstanding,
  p2c: () => powerOfTwoChoices(),
  'peak-ewma': peakEwma,
};

