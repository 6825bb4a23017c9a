/**
 * The pods that can take a new request right now (accept new work, have a free slot), indexed two
 * ways so every picker is O(1): by position for random choices, and in buckets by in-flight count for
 * least-outstanding. The pool calls `update` whenever a pod's in-flight count, limit or state changes.
 */
import { IndexedSet } from '../util/indexed-set.js';
import type { Backend } from './backend.js';

/** Pods with a free slot that accept new work, as a balancer sees them. Every accessor is O(1). */
export interface Candidates {
  readonly size: number;
  at(index: number): Backend;
  /** A pod with the fewest requests in flight, ties broken at random. */
  fewestInflight(random: () => number): Backend | undefined;
}

export class FreeSlots implements Candidates {
  private readonly members = new IndexedSet<Backend>();
  private readonly buckets: IndexedSet<Backend>[] = [];
  /** Lowest bucket that may be non-empty. */
  private lowest = 0;

  get size(): number {
    return this.members.size;
  }

  at(index: number): Backend {
    return this.members.at(index);
  }

  has(backend: Backend): boolean {
    return this.members.has(backend);
  }

  update(backend: Backend): void {
    const eligible = backend.acceptsNewWork && backend.inflight < backend.usable;
    if (backend.bucket !== -1 && (!eligible || backend.bucket !== backend.inflight)) {
      (this.buckets[backend.bucket] as IndexedSet<Backend>).delete(backend);
      backend.bucket = -1;
    }
    if (!eligible) {
      this.members.delete(backend);
      return;
    }
    this.members.add(backend);
    if (backend.bucket === -1) {
      const b = backend.inflight;
      while (this.buckets.length <= b) this.buckets.push(new IndexedSet<Backend>());
      (this.buckets[b] as IndexedSet<Backend>).add(backend);
      backend.bucket = b;
      if (b < this.lowest) this.lowest = b;
    }
  }

  remove(backend: Backend): void {
    if (backend.bucket !== -1) (this.buckets[backend.bucket] as IndexedSet<Backend>).delete(backend);
    backend.bucket = -1;
    this.members.delete(backend);
  }

  fewestInflight(random: () => number): Backend | undefined {
    if (this.members.size === 0) return undefined;
    for (let b = this.lowest; b < this.buckets.length; b++) {
      const bucket = this.buckets[b] as IndexedSet<Backend>;
      if (bucket.size > 0) {
        this.lowest = b;
        return bucket.random(random);
      }
    }
    return undefined;
  }

  values(): readonly Backend[] {
    return this.members.values();
  }
}
