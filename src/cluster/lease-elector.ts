/**
 * Scheduler election on Kubernetes: one coordination.k8s.io Lease per pool, through the project's
 * client-go-style election (src/kubernetes/lease-election.ts), with the advertise URL as
 * holderIdentity so every replica reading the Lease knows where to send. The API server arbitrates,
 * so two replicas never both hold a pool's Lease, whatever their views of the peers.
 *
 * One rule on top: a replica campaigns only while it has quorum among its peers. A scheduler cut off
 * from the other replicas but not from the API server would otherwise keep renewing, so the majority
 * could neither reach it nor elect another, and it would keep using every slot while the others fall
 * back to their shares. On losing quorum it stops its elections (releasing the Leases it holds, so a
 * replica of the majority takes over at once); on regaining quorum it campaigns again. A replica
 * without quorum also answers null for every pool.
 *
 * Lease names: `<service>-<pool>` (the pool lower-cased, `_` as `-`, plus a short hash when that
 * changed the name, so `Chat` and `chat` get two Leases), in the Service's namespace. RBAC: get,
 * create and update on `leases` there.
 */
import type { KubernetesConnection, KubernetesLogger } from '../kubernetes/client.js';
import { LeaseElection } from '../kubernetes/lease-election.js';
import { fnv1a } from '../util/hash.js';
import type { ElectorContext, SchedulerElector } from './elector.js';

export interface LeaseElectorOptions {
  readonly namespace: string;
  readonly service: string;
  readonly leaseDurationSeconds: number;
  readonly connect: () => Promise<KubernetesConnection>;
  readonly logger: KubernetesLogger;
  readonly now?: () => number;
}

/** A DNS-subdomain Lease name for a pool's scheduler (at most 63 characters, so it is also a label). */
export function schedulerLeaseName(service: string, pool: string): string {
  const lowered = pool.toLowerCase().replaceAll('_', '-');
  const suffix = lowered === pool ? '' : `-${fnv1a(pool).toString(36)}`;
  const name = `${service}-${lowered}`;
  const room = 63 - suffix.length;
  const kept = name.length > room ? `${name.slice(0, room - 8)}-${fnv1a(name).toString(36).padStart(7, '0')}` : name;
  return `${kept.replace(/-+$/, '')}${suffix}`;
}

export class LeaseElector implements SchedulerElector {
  private pools: readonly string[] = [];
  private readonly elections = new Map<string, LeaseElection>();
  private campaigning = false;
  private stopped = false;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly context: ElectorContext,
    private readonly options: LeaseElectorOptions,
  ) {}

  start(pools: readonly string[]): void {
    this.pools = pools;
    this.membershipChanged();
  }

  schedulerOf(pool: string): string | null {
    if (!this.campaigning || !this.context.hasQuorum()) return null;
    const election = this.elections.get(pool);
    if (!election) return null;
    if (election.isLeader) return this.context.self;
    const { holder } = election.status();
    return holder && holder !== this.context.self && this.context.isLive(holder) ? holder : null;
  }

  membershipChanged(): void {
    if (this.stopped) return;
    const quorum = this.context.hasQuorum();
    if (quorum && !this.campaigning) this.campaign();
    else if (!quorum && this.campaigning) this.pending = this.retire();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.pending;
    await this.retire();
  }

  private campaign(): void {
    this.campaigning = true;
    for (const pool of this.pools) {
      const election = new LeaseElection({
        name: schedulerLeaseName(this.options.service, pool),
        namespace: this.options.namespace,
        leaseDurationSeconds: this.options.leaseDurationSeconds,
        identity: this.context.self,
        connect: this.options.connect,
        labels: { 'app.kubernetes.io/component': 'scheduler-lease' },
        purpose: 'scheduler',
        logger: this.options.logger,
        logContext: { pool },
        onChange: () => this.context.changed(),
        ...(this.options.now ? { now: this.options.now } : {}),
      });
      this.elections.set(pool, election);
      election.start();
    }
  }

  /** Stops campaigning and releases what this replica holds. */
  private async retire(): Promise<void> {
    this.campaigning = false;
    const elections = [...this.elections.values()];
    this.elections.clear();
    this.context.changed();
    await Promise.all(elections.map((e) => e.stop()));
  }
}
