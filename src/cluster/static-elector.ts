/**
 * Scheduler election over a static peer list, with no store and no messages of its own: the
 * scheduler of a pool is the rendezvous winner (rendezvous.ts) for the pool's name among the replicas
 * this one sees alive, itself included, so pools spread over the replicas and replicas that see the
 * same live set agree. A replica without quorum answers null: a minority never elects, so two sides
 * of a partition cannot both name a scheduler that believes it holds the pool alone (the minority
 * side's replicas may still appear in the majority's answer only while the majority sees them alive).
 * While views differ (a link just dropped on one side) two replicas may briefly name different
 * schedulers; the admission side must treat a grant request reaching a non-scheduler as refused.
 */
import type { ElectorContext, SchedulerElector } from './elector.js';
import { rendezvousWinner } from './rendezvous.js';

export class StaticElector implements SchedulerElector {
  private pools: readonly string[] = [];
  private readonly winners = new Map<string, string>();

  constructor(private readonly context: ElectorContext) {}

  start(pools: readonly string[]): void {
    this.pools = pools;
    this.membershipChanged();
  }

  schedulerOf(pool: string): string | null {
    if (!this.context.hasQuorum()) return null;
    return this.winners.get(pool) ?? null;
  }

  membershipChanged(): void {
    const alive = this.context.alive();
    for (const pool of this.pools) this.winners.set(pool, rendezvousWinner(pool, alive) ?? this.context.self);
  }

  async stop(): Promise<void> {}
}
