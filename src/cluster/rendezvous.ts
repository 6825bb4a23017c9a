/**
 * Rendezvous (highest-random-weight) order of replicas for a key: every replica computes the same
 * order from the same set with no coordination, and removing a replica keeps the relative order of
 * the others, so only what the removed one held moves. The scheduler election over static peers
 * takes the first replica for a pool's name; the degraded-mode slot shares deal a pod's slots along
 * the order for the pod's key. Scores come from the same mix the sticky table uses
 * (src/affinity/rendezvous.ts); ties (vanishingly rare) go to the lower URL.
 */
import { rendezvousScore } from '../affinity/rendezvous.js';
import { fnv1a } from '../util/hash.js';

/** `replicas` (deduplicated) from the highest score for `key` to the lowest. */
export function rendezvousOrder(key: string, replicas: Iterable<string>): string[] {
  const keyHash = fnv1a(key);
  const scored = [...new Set(replicas)].map((url) => ({ url, score: rendezvousScore(keyHash, fnv1a(url)) }));
  scored.sort((a, b) => b.score - a.score || (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
  return scored.map((s) => s.url);
}

/** The first replica of the order, without sorting. */
export function rendezvousWinner(key: string, replicas: Iterable<string>): string | undefined {
  const keyHash = fnv1a(key);
  let best: string | undefined;
  let bestScore = -1;
  for (const url of replicas) {
    const score = rendezvousScore(keyHash, fnv1a(url));
    if (score > bestScore || (score === bestScore && best !== undefined && url < best)) {
      best = url;
      bestScore = score;
    }
  }
  return best;
}
