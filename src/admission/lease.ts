/**
 * A lease: one attempt's hold on one slot of one pod (tower's completion handle). It is created when
 * the slot is granted and released exactly once, with how the attempt ended and the pod's latency;
 * a second release is a no-op, so every path that can end an attempt (answer, error, timeout, client
 * abort, a retry moving on) may call it without double-counting. A retry takes a new lease. Whatever
 * learns from completions (the slot limiter, peak-EWMA, passive ejection) hears lease outcomes only.
 *
 * The proxy depends on this interface alone, so a slot granted elsewhere (another replica's queue)
 * is just another lease to it.
 */
import type { Backend } from '../pool/backend.js';
import type { Outcome } from '../pool/outcome.js';
import type { Ticket } from './ticket.js';

export interface Lease {
  readonly backend: Backend;
  readonly grantedAtMs: number;
  /** 1 for a request's first attempt, 2 for its retry. */
  readonly attempt: number;
  /** Whether it has been released. */
  readonly released: boolean;
  /** Ends the hold on the slot; only the first call counts. */
  release(outcome: Outcome, latencyMs?: number): void;
}

/** What a pool does when one of its leases ends. */
export type LeaseEnd<L extends Lease> = (lease: L, outcome: Outcome, latencyMs: number | undefined) => void;

/** A slot of this replica's own pool. */
export class LocalLease implements Lease {
  released = false;
  /** The adaptive limiter's round this attempt is a sample of (0: none); see `load/concurrency-limit.ts`. */
  limiterRound = 0;

  constructor(
    /** The request (ticket) holding it. */
    readonly holder: Ticket,
    readonly backend: Backend,
    readonly grantedAtMs: number,
    readonly attempt: number,
    /** Requests in flight on the pod right after the grant, this one included (what it queued behind). */
    readonly grantedInflight: number,
    /** The pod's `inflightArea` at the grant: what the attempt's mean concurrency is measured from. */
    readonly grantedArea: number,
    private readonly end: LeaseEnd<LocalLease>,
  ) {}

  release(outcome: Outcome, latencyMs?: number): void {
    if (this.released) return;
    this.released = true;
    this.end(this, outcome, latencyMs);
  }
}
