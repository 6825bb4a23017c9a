/**
 * The scheduler election seam: per pool, which replica holds the queue. Two implementations:
 * static-elector.ts (deterministic over the live static peers) and lease-elector.ts (one
 * coordination.k8s.io Lease per pool). The node asks `schedulerOf` after every membership change and
 * every heartbeat period and turns differences into change events, so an elector only has to answer
 * and to call `changed` when its answer may have moved for a reason of its own (a Lease round).
 */
export interface ElectorContext {
  readonly self: string;
  /** Exact at the moment of the call (membership.ts). */
  hasQuorum(): boolean;
  /** Known replicas in state alive, self included, sorted. */
  alive(): readonly string[];
  /** A replica in the known set and not dead (alive or suspect). */
  isLive(url: string): boolean;
  /** The elector's answer may have changed. */
  changed(): void;
}

export interface SchedulerElector {
  start(pools: readonly string[]): void;
  /** Null: no scheduler known (no quorum, or the election is pending). */
  schedulerOf(pool: string): string | null;
  /** Membership changed (called by the node before it compares answers). */
  membershipChanged(): void;
  stop(): Promise<void>;
}
