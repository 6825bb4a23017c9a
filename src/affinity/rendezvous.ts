/**
 * Rendezvous (highest-random-weight) hashing: a conversation goes to the pod whose hash with the
 * conversation key scores highest. Every gateway replica computes the same answer from the same pod
 * list with no shared store, and removing a pod moves only the conversations that were on it.
 *
 * The key is hashed once (FNV-1a); each pod's score is an integer mix of that hash with the pod's
 * precomputed hash, so a choice over n pods is n multiplications, no string work.
 */
import type { Backend } from '../pool/backend.js';
import { fnv1a } from '../util/hash.js';


/** A 32-bit finaliser (murmur3 fmix32): spreads the combined hashes so every pod is equally likely to win. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function rendezvousScore(keyHash: number, backendHash: number): number {
  return mix(keyHash ^ mix(backendHash));
}

/** The winning pod among `candidates` for `key`; ties (vanishingly rare) go to the lower pod key. */
export function rendezvousPick(key: string, candidates: Iterable<Backend>): Backend | undefined {
  const keyHash = fnv1a(key);
  let best: Backend | undefined;
  let bestScore = -1;
  for (const backend of candidates) {
    if (!backend.acceptsNewWork) continue;
    const score = rendezvousScore(keyHash, backend.hash);
    if (score > bestScore || (score === bestScore && best && backend.key < best.key)) {
      best = backend;
      bestScore = score;
    }
  }
  return best;
}
