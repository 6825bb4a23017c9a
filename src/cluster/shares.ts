/**
 * Slot shares for degraded mode: when replicas schedule alone (no scheduler reachable), each may use
 * only its share of every pod's slots, and the shares of all replicas in the list add up to exactly
 * the pod's slots, so the pod never runs more than its slots in total. Pure and deterministic: every
 * replica computes the same assignment from the same list, in any order, with no message exchanged.
 *
 * How: the replicas are put in rendezvous order for the pod's key (rendezvous.ts); each gets
 * floor(slots / n), and the first `slots mod n` of the order one more. A better shape than hashing
 * each slot index to a replica on its own: that spreads like dice, so with 2 slots and 3 replicas one
 * replica often holds both slots of a pod while another has none on it, and a replica whose clients
 * happen to need that pod waits behind a free slot it may not use. Dealing along the order gives every
 * replica floor or ceil of the fair share on every pod, and which replicas get the remainder changes
 * from pod to pod, so over a pool the remainders spread evenly. Removing a replica from the list keeps
 * the others' relative order, so shares move as little as the arithmetic allows.
 *
 * `sharesHeld` adds up the shares of several replicas (what a scheduler holding their votes may use).
 * A replica that is not in the list gets 0; unlimited slots (Infinity) stay unlimited for everyone.
 */
import { rendezvousOrder } from './rendezvous.js';

/** The sum of the shares of `holders` (each counted once; those not in `replicas` get 0), with one ordering. */
export function sharesHeld(podKey: string, slots: number, replicas: readonly string[], holders: readonly string[]): number {
  if (slots === Infinity) return holders.some((h) => replicas.includes(h)) ? Infinity : 0;
  const total = Number.isFinite(slots) ? Math.max(0, Math.floor(slots)) : 0;
  const order = rendezvousOrder(podKey, replicas);
  const base = Math.floor(total / order.length);
  let sum = 0;
  for (const holder of new Set(holders)) {
    const rank = order.indexOf(holder);
    if (rank !== -1) sum += base + (rank < total % order.length ? 1 : 0);
  }
  return sum;
}

export function shareOf(podKey: string, slots: number, replicas: readonly string[], self: string): number {
  if (slots === Infinity) return replicas.includes(self) ? Infinity : 0;
  const total = Number.isFinite(slots) ? Math.max(0, Math.floor(slots)) : 0;
  const order = rendezvousOrder(podKey, replicas);
  const rank = order.indexOf(self);
  if (rank === -1) return 0;
  const base = Math.floor(total / order.length);
  return base + (rank < total % order.length ? 1 : 0);
}
