/**
 * Grants in advance, the side of a replica that does not schedule its pool (cluster-scheduler.ts
 * holds the scheduler's side: lending, `adm.claim`, `adm.revoke`).
 *
 * A grant's round trip is two wake-ups of two processes; at low load it is most of what a remote
 * grant adds. So while the pool has free slots and nobody waits, the scheduler lends each peer up
 * to `prefetch` grants before it has a request for them (`adm.admit` with `s: 1`): a real slot,
 * counted at the scheduler like any grant, so no pod runs more than its slots. A request without a
 * conversation (a conversation's pod and turn are the scheduler's to decide) takes one at once and
 * tells the scheduler (`adm.claim`); release and done follow as for any grant. The scheduler lends
 * only with an empty queue and takes back what is unclaimed (`adm.revoke`) as soon as a request has
 * to wait, so a lent slot idles at most one round trip while others queue.
 */
import type { Cluster, ClusterMessage } from '../cluster/cluster.js';

/** A grant held in advance from the remote scheduler, not yet used by a request. */
export interface GrantInHand {
  readonly id: number;
  readonly pod: string;
  readonly attempt: number;
  readonly from: string;
}

/** After a refused or revoked grant in advance, how long a replica waits before asking again. */
const BACKOFF_MS = 100;

/** What the grants in hand need of their pool's cluster scheduler. */
export interface GrantsInHandHost {
  readonly poolName: string;
  readonly cluster: Cluster;
  /** The replica holding this one's vote, which lends; undefined while this replica schedules itself. */
  lender(): string | undefined;
  /** Whether the pod is (still) in this replica's pool. */
  hasPod(pod: string): boolean;
  now(): number;
  /** A new id for a request of this replica (ids are unique per replica). */
  newId(): number;
}

export class GrantsInHand {
  private readonly held: GrantInHand[] = [];
  /** Ids asked for and not yet answered. */
  private readonly asked = new Set<number>();
  private askAfterMs = 0;
  private askAgain: NodeJS.Timeout | undefined;
  private leaving = false;
  private claimed = 0;
  private returned = 0;

  constructor(
    private readonly host: GrantsInHandHost,
    private readonly prefetch: number,
  ) {}

  /** For /debug/cluster: held and not used; since start, the requests that started on one and those given back unused. */
  get view(): { readonly inHand: number; readonly claimed: number; readonly returned: number } {
    return { inHand: this.held.length, claimed: this.claimed, returned: this.returned };
  }

  /** Ids of grants held or asked for (they live at the lender). */
  ids(): number[] {
    return [...this.asked, ...this.held.map((h) => h.id)];
  }

  /** A grant in hand from the current lender on a pod still here, claimed (`adm.claim` sent); stale ones go back. */
  claim(): GrantInHand | undefined {
    const lender = this.host.lender();
    for (let held = this.held.pop(); held; held = this.held.pop()) {
      if (held.from !== lender || !this.host.hasPod(held.pod)) {
        this.giveBack(held);
        continue;
      }
      this.claimed++;
      this.host.cluster.send(held.from, { t: 'adm.claim', p: this.host.poolName, id: held.id });
      return held;
    }
    return undefined;
  }

  /** This replica drains: no more grants in advance, and those in hand go back. */
  leave(): void {
    this.leaving = true;
    this.dropAll();
  }

  /** Asks the lender for grants in advance, up to `prefetch` held or asked. */
  topUp(): void {
    const lender = this.host.lender();
    if (lender === undefined || this.leaving || this.held.length + this.asked.size >= this.prefetch || this.host.now() < this.askAfterMs) return;
    while (this.held.length + this.asked.size < this.prefetch) {
      const id = this.host.newId();
      if (!this.host.cluster.send(lender, { t: 'adm.admit', p: this.host.poolName, id, s: 1 })) return;
      this.asked.add(id);
    }
  }

  /** An `adm.grant` / `adm.reject` for a grant in advance we asked for; false when `id` is not one. */
  answer(from: string, id: number, m: ClusterMessage): boolean {
    if (!this.asked.delete(id)) return false;
    if (m.t === 'adm.reject') this.backOff();
    else {
      const held: GrantInHand = { id, pod: String(m.pod), attempt: Number(m.n), from };
      if (from === this.host.lender() && this.host.hasPod(held.pod)) this.held.push(held);
      else this.giveBack(held);
    }
    return true;
  }

  /** The lender takes one back (`adm.revoke`): a request had to wait there. */
  revoke(from: string, m: ClusterMessage): void {
    const i = this.held.findIndex((h) => h.id === Number(m.id) && h.from === from);
    if (i < 0) return; // claimed meanwhile: its claim is on the way
    this.giveBack(this.held.splice(i, 1)[0] as GrantInHand);
    this.backOff();
  }

  /** Scheduling moved: grants in hand go back to whoever lent them, answers still due are ignored. */
  dropAll(): void {
    for (const held of this.held.splice(0)) this.giveBack(held);
    this.asked.clear();
  }

  /** Refused or taken back: ask again after a pause (the queue may be long; a timer also covers an idle replica). */
  private backOff(): void {
    this.askAfterMs = this.host.now() + BACKOFF_MS;
    if (this.askAgain) return;
    this.askAgain = setTimeout(() => {
      this.askAgain = undefined;
      this.askAfterMs = 0;
      this.topUp();
    }, BACKOFF_MS);
    this.askAgain.unref();
  }

  private giveBack(held: GrantInHand): void {
    this.returned++;
    const send = (m: ClusterMessage) => this.host.cluster.send(held.from, m);
    send({ t: 'adm.release', p: this.host.poolName, id: held.id, n: held.attempt, o: 'client-left' });
    send({ t: 'adm.done', p: this.host.poolName, id: held.id });
  }
}
