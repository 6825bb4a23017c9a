/**
 * Scheduling across gateway replicas (issue 17): N replicas behave as one gateway. Per pool one
 * replica, the scheduler (elected by src/cluster/), holds the queue, the per-pod slot counts, the
 * sticky table and the ordering gates; it runs the same LocalScheduler as a lone gateway, for its
 * own requests and its peers' alike. Every replica keeps its own clients and proxies bodies and
 * answers to the pods itself: only small messages travel (the endpoint picker in reverse: the data
 * path stays distributed, the decision is central).
 *
 * A request on a replica that does not schedule its pool: `adm.admit` to the scheduler (conversation
 * key, ordered, pod to avoid, remaining deadline); the scheduler queues a HostedTicket for it and
 * answers `adm.grant` (the pod) or `adm.reject` (a catalog code). The grant is counted in this
 * replica's pool too (`Admission.grantedElsewhere`) and becomes an ordinary lease to the proxy; its
 * end goes back as `adm.release` (outcome and latency: the scheduler's limiter, peak-EWMA and
 * ejection learn from every replica's traffic), and the request's end as `adm.done` (its turn passes
 * on). Socket.io session bindings go to the scheduler (`adm.remember`); the scheduler copies every new
 * conversation -> pod binding to all peers (`adm.sticky`), so each replica holds the sticky table and
 * a new scheduler starts with it.
 *
 * Modes, from `Cluster.schedulerOf(pool)`:
 * - local (this replica schedules): full slots, minus the shares of peers it cannot reach (suspect or
 *   dead: a peer cut off rather than killed may be scheduling alone on its share);
 * - remote (a peer schedules): no local grants; waiting requests live in the scheduler's queue;
 * - alone (no scheduler: no quorum, election pending, the scheduler's link is down): this replica's
 *   share of every pod (cluster/shares.ts: the shares of all replicas add up to the pod's slots).
 * On every change the waiting requests are re-submitted where they now belong, the replica reports
 * its in-flight leases (pod, conversation, whether they hold its turn) to a new remote scheduler,
 * which counts them, remembers their conversations and holds their turns: no accepted request is
 * lost and no conversation whose pod still lives moves. A scheduler handing over to another also
 * reports the peers' requests it granted (`via`), so the new one counts them before their owners
 * report; a new scheduler grants nothing until its live peers have reported (or settleMs passed).
 * Hosted requests of a peer that died or came back as a new process are dropped (its pods' slots are
 * freed).
 *
 * Shares make partitions safe: the shares of all known replicas add up to a pod's slots, every replica
 * without a reachable scheduler uses only its own, and a scheduler leaves free the shares of every
 * peer it cannot reach. A scheduler that loses quorum keeps its peers' running requests counted, so
 * its own share never lands on top of them. The price: while a replica is down, its share of each pod
 * stays unused until it leaves the peer set. Limits (measured by `npm run bench -- failover`,
 * documented in the README): with static peers, two replicas can each see a majority with different
 * live sets while a partition heals (links come back one by one) and both schedule for a moment; the
 * requests a cut-off scheduler's own clients had in flight are unknown to its successor; a scheduler
 * cut off without its link dropping keeps full slots until it notices (at most deadAfterMs/2); and
 * messages to a peer whose link is down are not queued. A vote per replica, given to one scheduler
 * at a time and released before it moves, would close the first two (issue 17's note).
 */
import type { Admission } from '../admission/admission.js';
import type { LocalLease } from '../admission/lease.js';
import type { Affinity } from '../affinity/affinity.js';
import { shareOf, type Cluster, type ClusterMessage } from '../cluster/cluster.js';
import { errorCatalog, GatewayError, type ErrorCode } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import type { Outcome } from '../pool/outcome.js';
import type { Pool } from '../pool/pool.js';
import type { LocalScheduler } from './local-scheduler.js';
import { ScheduledTicket, type Scheduler } from './scheduler.js';

type Mode = 'local' | 'remote' | 'alone';

export interface ClusterSchedulingOptions {
  /** Grants a replica holds in advance from a remote scheduler (`cluster.prefetchGrants`; 0: none). */
  readonly prefetchGrants?: number;
  /** A new scheduler waits at most this long for its live peers' reports before it grants (deadAfterMs/2). */
  readonly settleMs?: number;
}

/** How long a peer waits before reporting again to a scheduler that was not scheduling yet. */
const REPORT_AGAIN_MS = 50;

/** A grant held in advance from the remote scheduler, not yet used by a request. */
interface GrantInHand {
  readonly id: number;
  readonly pod: string;
  readonly attempt: number;
  readonly from: string;
}

/** After a refused or revoked grant in advance, how long a replica waits before asking again. */
const PREFETCH_BACKOFF_MS = 100;

const outcomes = new Set<Outcome>(['ok', 'pod-error', 'timeout', 'client-left', 'gateway-error']);

/** A peer's request in this replica's queue: its grants and rejections go back as messages. */
class HostedTicket extends ScheduledTicket {
  /** Lent in advance (`s: 1`): granted before the peer has a request for it, until claimed or given back. */
  lent = false;
  /** An `adm.revoke` went out for it. */
  revoked = false;
  /** Known from the previous scheduler's hand-over, not from its own replica: that replica's report decides. */
  adopted = false;

  constructor(
    private readonly owner: ClusterScheduler,
    readonly peer: string,
    readonly id: number,
  ) {
    super();
  }

  override onGranted(backend: Backend): void {
    this.owner.hostedGranted(this, backend);
  }

  override onRejected(error: GatewayError): void {
    this.owner.hostedRejected(this, error);
  }

  override onTurn(): void {
    this.owner.turnCame(this);
  }
}

export class ClusterScheduler implements Scheduler {
  private mode: Mode = 'alone';
  private scheduler: string | null = null;
  private nextId = 0;
  /** This replica's requests known at a remote scheduler, by id (waiting there, or granted by it). */
  private readonly mine = new Map<number, ScheduledTicket>();
  /** Peers' requests this replica schedules, by peer, then id. */
  private readonly hosted = new Map<string, Map<number, HostedTicket>>();
  /** Leases held now on this replica's pool: what it reports to a new scheduler. */
  private readonly leases = new Set<LocalLease>();
  private waitingRemotely = 0;
  /** Grants in advance held here (remote mode), and the ids asked for and not yet answered. */
  private readonly inHand: GrantInHand[] = [];
  private readonly asked = new Set<number>();
  private askAfterMs = 0;
  private askAgain: NodeJS.Timeout | undefined;
  private leaving = false;
  private readonly prefetch: number;
  private readonly settleMs: number;
  /** A new scheduler's live peers that have not yet reported what they have in flight: no grants until they have. */
  private readonly awaitingReports = new Set<string>();
  private settleTimer: NodeJS.Timeout | undefined;
  /** Peers that have reported to this replica since it became the scheduler. */
  private readonly reportedHere = new Set<string>();
  /** Having scheduled until now: the peers' requests it granted that still run, handed to the next scheduler. */
  private handover: object[] = [];
  private claimedTotal = 0;
  private returnedTotal = 0;
  /** Grants lent in advance to peers and not yet claimed (local mode). */
  private readonly lent = new Set<HostedTicket>();

  constructor(
    readonly poolName: string,
    private readonly cluster: Cluster,
    readonly local: LocalScheduler,
    private readonly admission: Admission,
    private readonly affinity: Affinity | undefined,
    options: ClusterSchedulingOptions = {},
  ) {
    this.prefetch = options.prefetchGrants ?? 0;
    this.settleMs = options.settleMs ?? 1000;
    admission.elsewhere = {
      hostedWaiting: () => this.countHosted('queued'),
      hostedInflight: () => this.countHosted('granted'),
      waitingElsewhere: () => this.waitingRemotely,
    };
    admission.listen({
      requestStarted: (_backend, lease) => this.leases.add(lease),
      requestEnded: (_backend, outcome, latencyMs, lease) => this.leaseEnded(lease, outcome, latencyMs),
    });
    admission.pool.listen({ backendAdded: (b) => this.capOne(b, this.shareReplicas()) });
    if (affinity) affinity.onAssign = (key, backend) => this.assigned(key, backend);
  }

  private get pool(): Pool {
    return this.admission.pool;
  }

  // ---- the Scheduler seam (this replica's requests) ----

  admit(ticket: ScheduledTicket): void {
    if (this.mode !== 'remote') this.schedule(ticket, false);
    else if (!this.claim(ticket)) this.sendAdmit(ticket, false);
  }

  admitAgain(ticket: ScheduledTicket): void {
    if (this.mode !== 'remote') this.schedule(ticket, true);
    else this.sendAdmit(ticket, true);
  }

  finish(ticket: ScheduledTicket): void {
    const id = ticket.clusterId;
    if (id === 0) {
      this.local.finish(ticket);
      return;
    }
    this.forgetMine(ticket);
    if (this.mode === 'remote') {
      this.send({ t: 'adm.done', p: this.poolName, id });
      this.topUp();
    }
  }

  remember(key: string, backend: Backend): void {
    this.local.remember(key, backend);
    if (this.mode === 'remote') this.send({ t: 'adm.remember', p: this.poolName, k: key, pod: backend.key });
  }

  /**
   * For /debug/cluster: grants lent to peers and not claimed (scheduler side); held here and not used,
   * and since start the requests that started on one and the grants given back unused (peer side).
   */
  get grantsInAdvance(): { readonly lent: number; readonly inHand: number; readonly claimed: number; readonly returned: number } {
    return { lent: this.lent.size, inHand: this.inHand.length, claimed: this.claimedTotal, returned: this.returnedTotal };
  }

  // ---- grants in advance (remote mode) ----
  //
  // A grant's round trip is two wake-ups of two processes; at low load it is most of what a remote
  // grant adds. So while the pool has free slots and nobody waits, the scheduler lends each peer up
  // to `prefetch` grants before it has a request for them (`adm.admit` with `s: 1`): a real slot,
  // counted at the scheduler like any grant, so no pod runs more than its slots. A request without
  // a conversation (a conversation's pod and turn are the scheduler's to decide) takes one at once
  // and tells the scheduler (`adm.claim`); release and done follow as for any grant. The scheduler
  // lends only with an empty queue and takes back what is unclaimed (`adm.revoke`) as soon as a
  // request has to wait, so a lent slot idles at most one round trip while others queue.

  /** Starts a request on a grant in hand, without the round trip; false when none fits. */
  private claim(ticket: ScheduledTicket): boolean {
    if (ticket.conversationKey !== undefined || ticket.ordered) return false;
    for (let held = this.inHand.pop(); held; held = this.inHand.pop()) {
      const backend = this.pool.get(held.pod);
      if (!backend || held.from !== this.scheduler) {
        this.giveBack(held);
        continue;
      }
      ticket.clusterId = held.id;
      this.mine.set(held.id, ticket);
      ticket.enqueuedAtMs = this.pool.now();
      ticket.grants = held.attempt - 1;
      this.claimedTotal++;
      this.cluster.send(held.from, { t: 'adm.claim', p: this.poolName, id: held.id });
      this.admission.grantedElsewhere(ticket, backend);
      ticket.onGranted(backend);
      this.topUp();
      return true;
    }
    return false;
  }

  /** This replica drains: no more grants in advance, and those in hand go back. */
  leave(): void {
    this.leaving = true;
    this.dropInHand();
  }

  /** Asks the remote scheduler for grants in advance, up to `prefetch` held or asked. */
  private topUp(): void {
    if (this.mode !== 'remote' || this.leaving || this.inHand.length + this.asked.size >= this.prefetch || this.pool.now() < this.askAfterMs) return;
    while (this.inHand.length + this.asked.size < this.prefetch) {
      const id = ++this.nextId;
      if (!this.send({ t: 'adm.admit', p: this.poolName, id, s: 1 })) return;
      this.asked.add(id);
    }
  }

  /** An answer to a grant in advance we asked for; false when `id` is not one. */
  private heldAnswer(from: string, id: number, m: ClusterMessage): boolean {
    if (!this.asked.delete(id)) return false;
    if (m.t === 'adm.reject') this.backOff();
    else {
      const held: GrantInHand = { id, pod: String(m.pod), attempt: Number(m.n), from };
      if (from === this.scheduler && this.mode === 'remote' && this.pool.get(held.pod)) this.inHand.push(held);
      else this.giveBack(held);
    }
    return true;
  }

  private onRevoke(from: string, m: ClusterMessage): void {
    const i = this.inHand.findIndex((h) => h.id === Number(m.id) && h.from === from);
    if (i < 0) return; // claimed meanwhile: its claim is on the way
    this.giveBack(this.inHand.splice(i, 1)[0] as GrantInHand);
    this.backOff();
  }

  /** Refused or taken back: ask again after a pause (the queue may be long; a timer also covers an idle replica). */
  private backOff(): void {
    this.askAfterMs = this.pool.now() + PREFETCH_BACKOFF_MS;
    if (this.askAgain) return;
    this.askAgain = setTimeout(() => {
      this.askAgain = undefined;
      this.askAfterMs = 0;
      this.topUp();
    }, PREFETCH_BACKOFF_MS);
    this.askAgain.unref();
  }

  private giveBack(held: GrantInHand): void {
    this.returnedTotal++;
    this.cluster.send(held.from, { t: 'adm.release', p: this.poolName, id: held.id, n: held.attempt, o: 'client-left' });
    this.cluster.send(held.from, { t: 'adm.done', p: this.poolName, id: held.id });
  }

  /** Scheduling moved: grants in hand go back to whoever lent them, answers still due are ignored. */
  private dropInHand(): void {
    for (const held of this.inHand.splice(0)) this.giveBack(held);
    this.asked.clear();
  }

  // ---- requests waiting at a remote scheduler ----

  private sendAdmit(ticket: ScheduledTicket, again: boolean): void {
    if (ticket.clusterId === 0) {
      ticket.clusterId = ++this.nextId;
      this.mine.set(ticket.clusterId, ticket);
    }
    const message: Record<string, unknown> = { t: 'adm.admit', p: this.poolName, id: ticket.clusterId };
    if (ticket.conversationKey !== undefined) message.k = ticket.conversationKey;
    if (ticket.ordered) message.o = 1;
    if (again) message.r = 1;
    if (ticket.avoid) message.a = ticket.avoid.key;
    if (ticket.deadlineMs !== Infinity) message.d = Math.max(0, Math.round(ticket.deadlineMs - this.pool.now()));
    ticket.state = 'queued';
    ticket.enqueuedAtMs = this.pool.now();
    this.waitingRemotely++;
    if (!this.send(message as ClusterMessage)) {
      // The scheduler is unreachable: schedule alone on this replica's shares until the cluster says more.
      this.unwait(ticket);
      this.enter('alone', null);
      if (again || ticket.holdsTurn) this.local.admitAgain(ticket);
      else this.local.admit(ticket);
    }
  }

  /** A request of ours no longer waits remotely (granted, refused or moved). */
  private unwait(ticket: ScheduledTicket): void {
    if (ticket.state !== 'queued') return;
    ticket.state = 'new';
    this.waitingRemotely--;
  }

  private forgetMine(ticket: ScheduledTicket): void {
    this.unwait(ticket);
    this.mine.delete(ticket.clusterId);
    ticket.clusterId = 0;
  }

  private onGrant(from: string, m: ClusterMessage): void {
    if (this.heldAnswer(from, Number(m.id), m)) return;
    const ticket = this.mine.get(Number(m.id));
    const attempt = Number(m.n);
    const backend = typeof m.pod === 'string' ? this.pool.get(m.pod) : undefined;
    if (!ticket || ticket.state !== 'queued' || from !== this.scheduler || !backend) {
      // Nobody here wants it any more (the client left, the request moved, a pod not discovered here yet): give it back.
      this.cluster.send(from, { t: 'adm.release', p: this.poolName, id: m.id, n: attempt, o: backend ? 'client-left' : 'gateway-error' });
      // No request here knows the id (it ended, or was a grant in advance no longer wanted): nothing else will end it there.
      if (!ticket) this.cluster.send(from, { t: 'adm.done', p: this.poolName, id: m.id });
      if (ticket && ticket.state === 'queued' && from === this.scheduler && !backend) this.refuse(ticket, 'NO_ENDPOINTS');
      return;
    }
    this.unwait(ticket);
    if (ticket.ordered) ticket.holdsTurn = true;
    ticket.grants = attempt - 1;
    this.admission.grantedElsewhere(ticket, backend);
    ticket.onGranted(backend);
  }

  private onReject(from: string, m: ClusterMessage): void {
    if (this.heldAnswer(from, Number(m.id), m)) return;
    const ticket = this.mine.get(Number(m.id));
    if (!ticket || ticket.state !== 'queued' || from !== this.scheduler) return;
    if (m.c === 'NOT_SCHEDULER') {
      // Views of who schedules differ for a moment: ask again once ours has settled, unless the
      // request ended meanwhile (`finish` forgets it) or a scheduler change re-submitted it already.
      this.unwait(ticket);
      const id = ticket.clusterId;
      setTimeout(() => {
        if (this.mine.get(id) === ticket && ticket.state === 'new') this.resubmit(ticket);
      }, 50).unref();
      return;
    }
    const code = typeof m.c === 'string' && m.c in errorCatalog ? (m.c as ErrorCode) : 'INTERNAL';
    this.refuse(ticket, code);
  }

  private refuse(ticket: ScheduledTicket, code: ErrorCode): void {
    this.forgetMine(ticket);
    ticket.state = 'rejected';
    ticket.onRejected(new GatewayError(code));
  }

  /** Sends a waiting request of ours to wherever scheduling is now. */
  private resubmit(ticket: ScheduledTicket): void {
    if (ticket.state !== 'new') return;
    if (this.mode === 'remote') {
      this.sendAdmit(ticket, ticket.holdsTurn);
      return;
    }
    if (ticket.clusterId !== 0) this.forgetMine(ticket);
    if (ticket.holdsTurn) this.local.admitAgain(ticket);
    else this.local.admit(ticket);
  }

  private leaseEnded(lease: LocalLease, outcome: Outcome, latencyMs: number | undefined): void {
    this.leases.delete(lease);
    const ticket = lease.holder as ScheduledTicket;
    if (ticket instanceof HostedTicket || ticket.clusterId === 0 || this.mode !== 'remote') return;
    const message: Record<string, unknown> = { t: 'adm.release', p: this.poolName, id: ticket.clusterId, n: lease.attempt, o: outcome };
    if (latencyMs !== undefined) message.l = latencyMs;
    this.send(message as ClusterMessage);
  }

  private send(message: ClusterMessage): boolean {
    return this.scheduler !== null && this.cluster.send(this.scheduler, message);
  }

  // ---- peers' requests, when this replica schedules ----

  private hostedOf(peer: string): Map<number, HostedTicket> {
    let map = this.hosted.get(peer);
    if (!map) this.hosted.set(peer, (map = new Map()));
    return map;
  }

  private onAdmit(from: string, m: ClusterMessage): void {
    const id = Number(m.id);
    if (!Number.isSafeInteger(id)) return;
    if (this.mode !== 'local') {
      this.cluster.send(from, { t: 'adm.reject', p: this.poolName, id, c: 'NOT_SCHEDULER' });
      return;
    }
    if (m.s === 1) {
      this.lend(from, id);
      return;
    }
    const map = this.hostedOf(from);
    let ticket = map.get(id);
    const again = ticket !== undefined && m.r === 1;
    if (!ticket) {
      ticket = new HostedTicket(this, from, id);
      if (typeof m.k === 'string') ticket.conversationKey = m.k;
      ticket.ordered = m.o === 1 && ticket.conversationKey !== undefined;
      map.set(id, ticket);
    }
    if (ticket.state === 'queued' || ticket.state === 'granted') return;
    ticket.state = 'new';
    ticket.avoid = typeof m.a === 'string' ? this.pool.get(m.a) : undefined;
    ticket.deadlineMs = typeof m.d === 'number' ? this.pool.now() + m.d : Infinity;
    if (again || (m.r === 1 && ticket.ordered)) {
      // A retry, or a request re-submitted after a takeover while it holds its turn.
      if (ticket.ordered && !ticket.holdsTurn) this.affinity?.gate.hold(ticket.conversationKey as string);
      ticket.holdsTurn = ticket.ordered;
      this.schedule(ticket, true);
    } else {
      this.schedule(ticket, false);
    }
  }

  /** Admits a request here; one that has to wait takes back the grants lent in advance. */
  private schedule(ticket: ScheduledTicket, again: boolean): void {
    if (again) this.local.admitAgain(ticket);
    else this.local.admit(ticket);
    if (ticket.state === 'queued' && this.lent.size > 0) this.revokeLent();
  }

  /** A grant in advance for a peer, only from a free slot with nobody waiting. */
  private lend(peer: string, id: number): void {
    const map = this.hostedOf(peer);
    if (map.has(id)) return;
    if (this.admission.queue.length === 0) {
      const ticket = new HostedTicket(this, peer, id);
      ticket.lent = true;
      map.set(id, ticket);
      this.lent.add(ticket);
      this.local.admit(ticket); // granted at once (and sent) when a slot is free
      if (ticket.state === 'granted') return;
      this.lent.delete(ticket);
      if (ticket.state !== 'queued') return; // refused (no pods): hostedRejected has answered
      this.admission.cancel(ticket);
      map.delete(id);
    }
    this.cluster.send(peer, { t: 'adm.reject', p: this.poolName, id, c: 'BUSY' });
  }

  private onClaim(from: string, m: ClusterMessage): void {
    const ticket = this.hosted.get(from)?.get(Number(m.id));
    if (ticket) this.lent.delete(ticket);
  }

  private revokeLent(): void {
    for (const ticket of this.lent) {
      if (ticket.revoked) continue;
      ticket.revoked = true;
      this.cluster.send(ticket.peer, { t: 'adm.revoke', p: this.poolName, id: ticket.id });
    }
  }

  turnCame(ticket: HostedTicket): void {
    this.schedule(ticket, true);
  }

  hostedGranted(ticket: HostedTicket, backend: Backend): void {
    if (!this.cluster.send(ticket.peer, { t: 'adm.grant', p: this.poolName, id: ticket.id, pod: backend.key, n: ticket.grants })) {
      ticket.lease?.release('gateway-error'); // the peer is gone: the slot goes to the next waiter
    }
  }

  hostedRejected(ticket: HostedTicket, error: GatewayError): void {
    this.hosted.get(ticket.peer)?.delete(ticket.id);
    this.local.finish(ticket);
    this.cluster.send(ticket.peer, { t: 'adm.reject', p: this.poolName, id: ticket.id, c: error.code });
  }

  private onRelease(from: string, m: ClusterMessage): void {
    const ticket = this.hosted.get(from)?.get(Number(m.id));
    if (!ticket || ticket.state !== 'granted' || ticket.grants !== Number(m.n)) return;
    const outcome = outcomes.has(m.o as Outcome) ? (m.o as Outcome) : 'gateway-error';
    ticket.lease?.release(outcome, typeof m.l === 'number' && m.l >= 0 ? m.l : undefined);
  }

  private onDone(from: string, m: ClusterMessage): void {
    const map = this.hosted.get(from);
    const ticket = map?.get(Number(m.id));
    if (!ticket) return;
    map!.delete(ticket.id);
    this.endHosted(ticket);
  }

  /** A hosted request is over: whatever it holds here is given back, its turn passes on. */
  private endHosted(ticket: HostedTicket): void {
    this.lent.delete(ticket);
    if (ticket.state === 'granted') ticket.lease?.release('client-left');
    this.local.finish(ticket);
  }

  private onRemember(m: ClusterMessage): void {
    const backend = typeof m.pod === 'string' ? this.pool.get(m.pod) : undefined;
    if (backend && typeof m.k === 'string' && this.mode === 'local') this.local.remember(m.k, backend);
  }

  /** A new scheduler hears what a peer has in flight: counted, its conversations remembered, its turns held. */
  private onReport(from: string, m: ClusterMessage): void {
    if (!Array.isArray(m.leases)) return;
    if (this.mode !== 'local') {
      // The peer sees this replica as the scheduler before it does itself: ask again, fresh, later.
      this.cluster.send(from, { t: 'adm.unreported', p: this.poolName });
      return;
    }
    const map = this.hostedOf(from);
    type Entry = { id?: unknown; pod?: unknown; n?: unknown; k?: unknown; turn?: unknown; via?: unknown };
    const entries = m.leases as Entry[];
    const reported = new Set<number>();
    for (const e of entries) if (e && typeof e.via !== 'string') reported.add(Number(e.id));
    // What the previous scheduler handed over for this replica and it no longer runs has ended (its
    // end went to the previous scheduler): gone before its own requests take their turns.
    for (const ticket of [...map.values()]) {
      if (!ticket.adopted || reported.has(ticket.id)) continue;
      map.delete(ticket.id);
      this.endHosted(ticket);
    }
    for (const e of entries) {
      if (!e) continue;
      const id = Number(e.id);
      // `via`: a request of another replica, handed over by the scheduler before this one. Its own
      // replica's report, if it came already, is the truth; this replica's own requests it knows.
      const owner = typeof e.via === 'string' ? e.via : from;
      if (owner !== from && (owner === this.cluster.self || this.reportedHere.has(owner))) continue;
      const owned = this.hostedOf(owner);
      const backend = typeof e.pod === 'string' ? this.pool.get(e.pod) : undefined;
      if (!Number.isSafeInteger(id) || !backend || owned.has(id)) continue;
      const ticket = new HostedTicket(this, owner, id);
      ticket.adopted = owner !== from;
      if (typeof e.k === 'string') {
        ticket.conversationKey = e.k;
        this.affinity?.remember(e.k, backend);
        if (e.turn === 1) {
          ticket.ordered = true;
          ticket.holdsTurn = true;
          this.affinity?.gate.hold(e.k);
        }
      }
      ticket.grants = Math.max(0, Number(e.n) - 1) || 0;
      owned.set(id, ticket);
      this.admission.grantedElsewhere(ticket, backend);
    }
    this.reportedHere.add(from);
    // A peer reports whenever it turns to this scheduler, having given up every grant in hand on
    // leaving it (its link may have dropped and come back without it ever turning dead): what it
    // reports as running was claimed, the rest of what was lent to it is free again.
    for (const ticket of [...this.lent]) {
      if (ticket.peer !== from) continue;
      this.lent.delete(ticket);
      if (reported.has(ticket.id)) continue;
      map.delete(ticket.id);
      this.endHosted(ticket);
    }
    if (this.awaitingReports.delete(from)) this.settleIfReported();
  }

  private onUnreported(from: string): void {
    if (from !== this.scheduler || this.mode !== 'remote') return;
    setTimeout(() => {
      if (this.mode === 'remote' && this.scheduler === from) this.report();
    }, REPORT_AGAIN_MS).unref();
  }

  // ---- taking over: no grant before the live peers have said what they run ----
  //
  // A replica that becomes the scheduler knows only its own leases; the previous scheduler's grants
  // to the others are still running. Granting at once would put them and new ones on the same slots
  // (it did: a pod held 3 of 2 when a cut-off scheduler came back and took over again). So it grants
  // nothing until every live peer has reported (each does as soon as it sees the new scheduler), or
  // `settleMs` has passed; peers not alive keep their shares reserved as always.

  private startSettling(): void {
    this.reportedHere.clear();
    this.awaitingReports.clear();
    for (const peer of this.cluster.peers()) if (peer.url !== this.cluster.self && peer.state === 'alive') this.awaitingReports.add(peer.url);
    if (this.awaitingReports.size === 0) return;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.awaitingReports.clear();
      this.settleIfReported();
    }, this.settleMs);
    this.settleTimer.unref();
  }

  private stopSettling(): void {
    this.awaitingReports.clear();
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
  }

  /** Whether a peer this replica still waits for is alive (one that is not has its share reserved instead). */
  private get settling(): boolean {
    if (this.awaitingReports.size === 0) return false;
    for (const peer of this.cluster.peers()) if (peer.state === 'alive' && this.awaitingReports.has(peer.url)) return true;
    return false;
  }

  private settleIfReported(): void {
    if (this.settling) return;
    this.stopSettling();
    this.capAll();
  }

  /** The scheduler's copy of a new binding (the sticky table lives on every replica). */
  private onSticky(from: string, m: ClusterMessage): void {
    if (from !== this.scheduler || this.mode === 'local' || !this.affinity) return;
    const backend = typeof m.pod === 'string' ? this.pool.get(m.pod) : undefined;
    if (backend && typeof m.k === 'string') this.affinity.remember(m.k, backend);
  }

  private assigned(key: string, backend: Backend): void {
    if (this.mode !== 'local') return;
    for (const peer of this.cluster.peers()) {
      if (peer.url !== this.cluster.self && peer.state === 'alive') this.cluster.send(peer.url, { t: 'adm.sticky', p: this.poolName, k: key, pod: backend.key });
    }
  }

  /** A peer died or came back as a new process: its requests here are gone. */
  dropPeer(peer: string): void {
    const map = this.hosted.get(peer);
    if (!map) return;
    this.hosted.delete(peer);
    for (const ticket of map.values()) {
      if (ticket.state === 'queued') this.admission.cancel(ticket);
      this.endHosted(ticket);
    }
  }

  private countHosted(state: 'queued' | 'granted'): number {
    let n = 0;
    for (const map of this.hosted.values()) for (const t of map.values()) if (t.state === state) n++;
    return n;
  }

  // ---- who schedules, and with how many slots ----

  /** Re-reads who schedules the pool; called on every cluster change that may move it. */
  update(): void {
    const scheduler = this.cluster.schedulerOf(this.poolName);
    const mode: Mode = scheduler === null ? 'alone' : scheduler === this.cluster.self ? 'local' : 'remote';
    this.enter(mode, scheduler);
    this.capAll();
  }

  private enter(mode: Mode, scheduler: string | null): void {
    if (mode === this.mode && scheduler === this.scheduler) return;
    const before = this.mode;
    this.mode = mode;
    this.scheduler = scheduler;
    this.handover = before === 'local' && mode === 'remote' ? this.hostedRunning() : [];
    if (mode === 'local') this.startSettling();
    else this.stopSettling();
    // The new caps first, and this replica's waiters out of its queue if they now wait elsewhere
    // (they go where scheduling now is, below): a slot given back from here on goes out under them.
    this.capAll();
    const moved = mode === 'remote' ? this.takeLocalWaiters() : [];
    if (before === 'local') this.stopHosting(mode === 'alone');
    if (mode === 'remote') this.endHostedAll();
    if (before === 'remote') this.dropInHand();
    const waitingRemotely = [...this.mine.values()].filter((t) => t.state === 'queued');
    for (const t of waitingRemotely) this.unwait(t);
    if (mode === 'remote') this.report();
    else this.adoptMine();
    this.capAll();
    for (const t of [...waitingRemotely, ...moved]) this.resubmit(t);
    this.topUp();
  }

  /**
   * No longer the scheduler: peers' waiting requests are sent back (they ask the new one), and the
   * slots of their running ones freed, their turns passed on, unless this replica now schedules
   * alone (`keepRunning`). Then it cannot hear when they end, and they may hold more than their
   * owners' shares (a scheduler gives any replica any slot): they stay counted here, so that this
   * replica's own share never lands on top of them, until their owner reports (when this replica
   * schedules again), turns dead, or another replica schedules (`endHostedAll`).
   */
  private stopHosting(keepRunning: boolean): void {
    this.revokeLent();
    this.lent.clear();
    for (const [peer, map] of this.hosted) {
      for (const ticket of [...map.values()]) {
        if (ticket.state === 'queued') {
          this.admission.cancel(ticket);
          this.cluster.send(peer, { t: 'adm.reject', p: this.poolName, id: ticket.id, c: 'NOT_SCHEDULER' });
        }
        if (keepRunning && ticket.state === 'granted') {
          ticket.adopted = true;
          continue;
        }
        map.delete(ticket.id);
        this.endHosted(ticket);
      }
    }
  }

  /** Another replica schedules: peers' requests kept counted here are its to count now (their owners report them). */
  private endHostedAll(): void {
    const all = [...this.hosted.values()].flatMap((m) => [...m.values()]);
    this.hosted.clear();
    for (const ticket of all) this.endHosted(ticket);
  }

  /** This replica's waiters in its own queue and conversation gates, taken out to be re-submitted. */
  private takeLocalWaiters(): ScheduledTicket[] {
    const parked = (this.affinity?.gate.clear() ?? []) as ScheduledTicket[];
    for (const t of parked) this.admission.queue.unpark(t);
    const waiting = this.admission.queue.drain() as ScheduledTicket[];
    return [...parked, ...waiting].sort((a, b) => a.seq - b.seq);
  }

  /** Tells a new remote scheduler what this replica has in flight. */
  private report(): void {
    const leases: object[] = [];
    for (const lease of this.leases) {
      const ticket = lease.holder as ScheduledTicket;
      if (ticket instanceof HostedTicket) continue;
      if (ticket.clusterId === 0) {
        ticket.clusterId = ++this.nextId;
        this.mine.set(ticket.clusterId, ticket);
      }
      const entry: Record<string, unknown> = { id: ticket.clusterId, pod: lease.backend.key, n: lease.attempt };
      if (ticket.conversationKey !== undefined) entry.k = ticket.conversationKey;
      if (ticket.holdsTurn) entry.turn = 1;
      leases.push(entry);
    }
    this.send({ t: 'adm.report', p: this.poolName, leases: [...leases, ...this.handover] });
  }

  /** The peers' requests this scheduler granted that still run (not grants lent and unclaimed), as report entries. */
  private hostedRunning(): object[] {
    const entries: object[] = [];
    for (const [peer, map] of this.hosted) {
      for (const ticket of map.values()) {
        const lease = ticket.lease;
        if (ticket.state !== 'granted' || !lease || this.lent.has(ticket)) continue;
        const entry: Record<string, unknown> = { via: peer, id: ticket.id, pod: lease.backend.key, n: lease.attempt };
        if (ticket.conversationKey !== undefined) entry.k = ticket.conversationKey;
        if (ticket.holdsTurn) entry.turn = 1;
        entries.push(entry);
      }
    }
    return entries;
  }

  /** Scheduling here now (local or alone): this replica's remotely granted requests are its own again. */
  private adoptMine(): void {
    for (const ticket of [...this.mine.values()]) {
      this.forgetMine(ticket);
      const key = ticket.conversationKey;
      if (key === undefined || !ticket.backend || ticket.state !== 'granted') continue;
      this.affinity?.remember(key, ticket.backend);
      if (ticket.holdsTurn) this.affinity?.gate.hold(key);
    }
  }

  /**
   * The replicas whose shares count: every known one, dead or not. One that is cut off may be
   * scheduling alone on its share for as long as it runs, and "dead" only means not heard from: its
   * share stays free until it leaves the peer set (on Kubernetes, when its pod leaves the headless
   * Service's slices; with static peers, when it is back or removed from `peers`).
   */
  private shareReplicas(): string[] {
    return this.cluster.peers().map((p) => p.url);
  }

  private capAll(): void {
    const replicas = this.shareReplicas();
    for (const b of this.pool.backends) this.capOne(b, replicas);
  }

  private capOne(backend: Backend, replicas: readonly string[]): void {
    this.pool.setCap(backend, this.capFor(backend, replicas));
  }

  private capFor(backend: Backend, replicas: readonly string[]): number {
    if (this.mode === 'remote') return Infinity;
    if (this.mode === 'alone') return shareOf(backend.key, backend.limit, replicas, this.cluster.self);
    if (this.settling) return 0;
    let reserved = 0;
    for (const peer of this.cluster.peers()) {
      if (peer.state !== 'alive') reserved += shareOf(backend.key, backend.limit, replicas, peer.url);
    }
    return Math.max(0, backend.limit - reserved);
  }

  /** Message handlers, by type (one set for all pools: `attachClusterScheduling` routes by pool). */
  handle(type: string, from: string, m: ClusterMessage): void {
    switch (type) {
      case 'adm.admit':
        return this.onAdmit(from, m);
      case 'adm.grant':
        return this.onGrant(from, m);
      case 'adm.reject':
        return this.onReject(from, m);
      case 'adm.release':
        return this.onRelease(from, m);
      case 'adm.done':
        return this.onDone(from, m);
      case 'adm.remember':
        return this.onRemember(m);
      case 'adm.report':
        return this.onReport(from, m);
      case 'adm.sticky':
        return this.onSticky(from, m);
      case 'adm.claim':
        return this.onClaim(from, m);
      case 'adm.revoke':
        return this.onRevoke(from, m);
      case 'adm.unreported':
        return this.onUnreported(from);
    }
  }
}

export const messageTypes = ['adm.admit', 'adm.grant', 'adm.reject', 'adm.release', 'adm.done', 'adm.remember', 'adm.report', 'adm.sticky', 'adm.claim', 'adm.revoke', 'adm.unreported'] as const;

/**
 * Wires a replica's pool schedulers to the cluster: messages routed by pool, and every change that
 * can move a pool's scheduler or its shares (an election, a peer's state, a peer restarting).
 * Slot limits move with slow start and adaptive slots, so shares are also recomputed each `refreshMs`.
 */
export function attachClusterScheduling(cluster: Cluster, schedulers: ReadonlyMap<string, ClusterScheduler>, refreshMs: number): () => void {
  for (const type of messageTypes) {
    cluster.on(type, (from, m) => schedulers.get(String(m.p))?.handle(type, from, m));
  }
  const updateAll = () => {
    for (const s of schedulers.values()) s.update();
  };
  cluster.onSchedulerChange((pool) => schedulers.get(pool)?.update());
  cluster.onPeerState((url, state) => {
    if (state === 'dead') for (const s of schedulers.values()) s.dropPeer(url);
    updateAll();
  });
  cluster.onPeerRestart((url) => {
    for (const s of schedulers.values()) s.dropPeer(url);
  });
  const timer = setInterval(updateAll, refreshMs);
  timer.unref();
  updateAll();
  return () => clearInterval(timer);
}
