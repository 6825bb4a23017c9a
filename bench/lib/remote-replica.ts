/**
 * A non-scheduler replica for the `cluster` bench: a cluster member that speaks the admission
 * protocol of src/scheduling/cluster-scheduler.ts to the replica that schedules a pool, with no pool
 * or proxy of its own. `vote` gives the scheduler this member's vote (`adm.report`, nothing running):
 * a scheduler grants only to members whose votes it holds. `admit` sends `adm.admit` and resolves with the `adm.grant` (rejects on
 * `adm.reject`); `finish` ends the request as a replica does once its upstream attempt is over
 * (`adm.release` with outcome ok and a latency, then `adm.done`). Copies of sticky bindings the
 * scheduler sends (`adm.sticky`) are counted.
 */
import type { Cluster, ClusterMessage } from '../../src/cluster/cluster.js';

export interface Grant {
  readonly id: number;
  readonly pod: string;
  readonly n: number;
}

export interface AdmitOptions {
  /** Conversation key (`k`): the sticky table. */
  readonly key?: string;
  /** One turn at a time per conversation (`o: 1`): the ordering gate. */
  readonly ordered?: boolean;
}

export class RejectedError extends Error {
  constructor(readonly code: string) {
    super(`admission rejected: ${code}`);
  }
}

export class RemoteReplica {
  private nextId = 0;
  private votes = 0;
  /** `adm.unvoted` received: the scheduler handed the vote back (it did not schedule yet). */
  votesBack = 0;
  private readonly waiting = new Map<number, { resolve(g: Grant): void; reject(e: Error): void }>();
  /** `adm.sticky` messages received (one per new conversation binding on the scheduler). */
  stickyCopies = 0;
  /** Grants or rejections from another member than the scheduler, or for no request waiting here. */
  strays = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly scheduler: string,
    private readonly pool: string,
    /** Remaining deadline sent with each admit (`d`), as a replica does for a route with a deadline. */
    private readonly deadlineMs = 30_000,
  ) {
    cluster.on('adm.grant', (from, m) => this.settle(from, m, (w) => w.resolve({ id: Number(m.id), pod: String(m.pod), n: Number(m.n) })));
    cluster.on('adm.reject', (from, m) => this.settle(from, m, (w) => w.reject(new RejectedError(String(m.c)))));
    cluster.on('adm.sticky', () => this.stickyCopies++);
    cluster.on('adm.unvoted', () => this.votesBack++);
  }

  private settle(from: string, m: ClusterMessage, how: (w: { resolve(g: Grant): void; reject(e: Error): void }) => void): void {
    const id = Number(m.id);
    const w = this.waiting.get(id);
    if (!w || from !== this.scheduler || m.p !== this.pool) {
      this.strays++;
      return;
    }
    this.waiting.delete(id);
    how(w);
  }

  /** Requests sent and not yet granted or rejected. */
  get pending(): number {
    return this.waiting.size;
  }

  /** Gives the scheduler this member's vote, with nothing running here. */
  vote(): void {
    this.cluster.send(this.scheduler, { t: 'adm.report', p: this.pool, v: ++this.votes, leases: [] });
  }

  admit(options: AdmitOptions = {}): Promise<Grant> {
    const id = ++this.nextId;
    const message: Record<string, unknown> = { t: 'adm.admit', p: this.pool, id, d: this.deadlineMs };
    if (options.key !== undefined) message.k = options.key;
    if (options.ordered) message.o = 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (!this.cluster.send(this.scheduler, message as ClusterMessage)) {
        this.waiting.delete(id);
        reject(new Error('link to the scheduler is down'));
      }
    });
  }

  /** The attempt ended well after `latencyMs`, and the request is over. */
  finish(grant: Grant, latencyMs: number): void {
    this.cluster.send(this.scheduler, { t: 'adm.release', p: this.pool, id: grant.id, n: grant.n, o: 'ok', l: latencyMs });
    this.cluster.send(this.scheduler, { t: 'adm.done', p: this.pool, id: grant.id });
  }
}
