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
 * Votes: who may use which slots. Every replica has one vote per pool, and its vote carries its
 * share of every pod's slots (cluster/shares.ts: the shares of all known replicas add up to each
 * pod's slots). The vote is in one place at a time: with the replica itself, which then schedules
 * its own requests (and its voters') on the shares of the votes it holds, or with the peer it gave
 * it to, which then schedules its requests for it. A scheduler counts a voter's share only while the
 * voter is in contact (Cluster.inContact: echoed heartbeats), so the slots of a pod are never used
 * by two replicas on behalf of one share, whatever the replicas believe about who is elected: two
 * replicas that both think they schedule (views differ while a partition heals and links come back
 * one by one) hold different votes and use different shares. The election only says where a vote
 * should go.
 * - Giving it (`adm.report`, numbered `v`): the report lists what the replica has running (pod,
 *   conversation, whether it holds its turn), so the new holder counts those requests before it
 *   counts the share. A replica that does not schedule the pool hands the vote straight back.
 * - Moving it: the replica asks the holder (`adm.unvote`); the holder stops using the share and
 *   answers `adm.unvoted` with what its own regime has running (its own requests and the requests
 *   it granted to other replicas, `via` their owners), which the replica passes on with its next
 *   vote. So a new scheduler learns the running requests of the previous one through any voter,
 *   without being able to reach it. A holder that stops scheduling gives all its votes back alike.
 * - Taking it back without an answer: when the link to the holder closes (a killed replica's
 *   sockets close at once) or the holder is dead (membership.ts: by then it has stopped counting
 *   this replica for at least deadAfterMs/2). A peer in the middle (suspect, link up) keeps it.
 * Requests are never dropped from a count for a change of vote: a running request stays counted by
 * every replica that knows it (the one that granted it, every holder it was reported to) until its
 * owner's `adm.release` / `adm.done`, which go to all of them, or its owner's next report or list
 * of live requests there (`adm.live`, when a link comes back), or the owner restarts (or, dead, its
 * requests met the upstream timeout). Waiting requests go where the vote now is. The rules are
 * model-checked in test/cluster-votes.test.ts.
 *
 * What this leaves (measured by `npm run bench -- failover`, in the README): requests that a
 * scheduler granted before it was cut off by a closed link keep running on a share its successor
 * may already use, so a pod can run more than its slots until they end (the successor cannot know
 * them); a scheduler's last handover covers only what it knew. Two replicas that both schedule for
 * a moment keep separate ordering gates, so during that moment one conversation may run a turn
 * through each. Messages to a peer whose link is down are not queued.
 */
import type { Admission } from '../admission/admission.js';
import type { LocalLease } from '../admission/lease.js';
import type { Affinity } from '../affinity/affinity.js';
import { sharesHeld, type Cluster, type ClusterMessage } from '../cluster/cluster.js';
import { errorCatalog, GatewayError, type ErrorCode } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import type { Outcome } from '../pool/outcome.js';
import type { Pool } from '../pool/pool.js';
import type { LocalScheduler } from './local-scheduler.js';
import { GrantsInHand } from './grants-in-hand.js';
import { ScheduledTicket, type Scheduler } from './scheduler.js';

type Mode = 'local' | 'remote';

export interface ClusterSchedulingOptions {
  /** Grants a replica holds in advance from a remote scheduler (`cluster.prefetchGrants`; 0: none). */
  readonly prefetchGrants?: number;
  /** After a vote comes back unanswered, how long this replica grants nothing (deadAfterMs/2). */
  readonly settleMs?: number;
}

/** How long a replica waits before giving its vote again to a peer that handed it straight back. */
const VOTE_AGAIN_MS = 50;

/** A request handed over through a voter has no known holders: its end goes to every linked peer. */
const ANY_PEER = '*';

/** A running request in `adm.report` / `adm.unvoted`: `via` names its owner when that is not the sender. */
type ReportEntry = { id?: unknown; pod?: unknown; n?: unknown; k?: unknown; turn?: unknown; via?: unknown } | null;

const outcomes = new Set<Outcome>(['ok', 'pod-error', 'timeout', 'client-left', 'gateway-error']);

/** A peer's request in this replica's queue: its grants and rejections go back as messages. */
class HostedTicket extends ScheduledTicket {
  /** Lent in advance (`s: 1`): granted before the peer has a request for it, until claimed or given back. */
  lent = false;
  /** An `adm.revoke` went out for it. */
  revoked = false;
  /** Known from another replica's hand-over, not from its owner: the owner's report decides. */
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
  /** local: this replica holds its own vote and schedules its requests; remote: `scheduler` holds it. */
  private mode: Mode = 'local';
  /** Where this replica's requests are scheduled: itself, or the peer holding its vote. */
  private scheduler: string;
  /** The number of this replica's vote, new each time it is given. */
  private vote = 0;
  /** An `adm.unvote` went to the holder: the vote is to move once it answers. */
  private unvoting = false;
  /** The previous holder's running requests (its `adm.unvoted`), passed on with the next vote. */
  private forward: object[] = [];
  /** A peer that handed the vote straight back is not given it again before `untilMs`. */
  private bounced: { peer: string; untilMs: number } | undefined;
  private voteTimer: NodeJS.Timeout | undefined;
  /** After a vote came back unanswered, no grant before this time (see `takeBack`). */
  private settledAtMs = 0;
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly settleMs: number;
  /**
   * Peers' votes held here: their number, and from when their shares may be used (a vote taken back
   * unanswered is given on with the rest of its wait). Used while their givers are in contact.
   */
  private readonly votes = new Map<string, { readonly v: number; readonly usableAtMs: number }>();
  private nextId = 0;
  /** This replica's requests known at other replicas, by id (waiting at its scheduler, or granted, or reported). */
  private readonly mine = new Map<number, ScheduledTicket>();
  /** Where each of those is known (its end goes to all of them); ANY_PEER: handed over through a voter. */
  private readonly knownAt = new Map<number, string[]>();
  /** Of those, granted elsewhere and now scheduled here: their turns are held in the local gate. */
  private readonly adopted = new Set<ScheduledTicket>();
  /** Peers' requests this replica schedules or counts, by peer, then id. */
  private readonly hosted = new Map<string, Map<number, HostedTicket>>();
  /** Leases held now on this replica's pool: what it reports with its vote. */
  private readonly leases = new Set<LocalLease>();
  private waitingRemotely = 0;
  /** Grants in advance held here (remote mode). */
  private readonly inHand: GrantsInHand;
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
    this.inHand = new GrantsInHand(
      {
        poolName,
        cluster,
        lender: () => (this.mode === 'remote' ? this.scheduler : undefined),
        hasPod: (pod) => this.pool.get(pod) !== undefined,
        now: () => this.pool.now(),
        newId: () => ++this.nextId,
      },
      options.prefetchGrants ?? 0,
    );
    this.settleMs = options.settleMs ?? 1000;
    this.scheduler = cluster.self;
    admission.elsewhere = {
      hostedWaiting: () => this.countHosted('queued'),
      hostedInflight: () => this.countHosted('granted'),
      waitingElsewhere: () => this.waitingRemotely,
    };
    admission.listen({
      requestStarted: (_backend, lease) => this.leases.add(lease),
      requestEnded: (_backend, outcome, latencyMs, lease) => this.leaseEnded(lease, outcome, latencyMs),
    });
    admission.pool.listen({ backendAdded: (b) => this.capOne(b, this.shareReplicas(), this.countedVotes()) });
    if (affinity) affinity.onAssign = (key, backend) => this.assigned(key, backend);
  }

  private get pool(): Pool {
    return this.admission.pool;
  }

  // ---- the Scheduler seam (this replica's requests) ----

  admit(ticket: ScheduledTicket): void {
    if (this.mode === 'local') this.schedule(ticket, false);
    else if (!this.claim(ticket)) this.sendAdmit(ticket, false);
  }

  admitAgain(ticket: ScheduledTicket): void {
    if (this.mode === 'local') this.schedule(ticket, true);
    else this.sendAdmit(ticket, true);
  }

  finish(ticket: ScheduledTicket): void {
    if (ticket.clusterId === 0) {
      this.local.finish(ticket);
      return;
    }
    const turnHere = this.adopted.delete(ticket);
    this.forgetMine(ticket);
    if (turnHere) this.local.finish(ticket);
    else this.inHand.topUp();
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
    return { lent: this.lent.size, ...this.inHand.view };
  }

  /** For /debug/cluster: where this replica's vote is, and whose votes it holds. */
  get votesView(): { readonly at: string; readonly held: readonly string[] } {
    return { at: this.scheduler, held: [...this.votes.keys()] };
  }
  // ---- grants in advance (remote mode; grants-in-hand.ts) ----

  /** Starts a request on a grant in hand, without the round trip; false when none fits. */
  private claim(ticket: ScheduledTicket): boolean {
    if (ticket.conversationKey !== undefined || ticket.ordered) return false;
    const held = this.inHand.claim();
    const backend = held && this.pool.get(held.pod);
    if (!held || !backend) return false;
    ticket.clusterId = held.id;
    this.mine.set(held.id, ticket);
    this.knownAt.set(held.id, [held.from]);
    ticket.enqueuedAtMs = this.pool.now();
    ticket.grants = held.attempt - 1;
    this.admission.grantedElsewhere(ticket, backend);
    ticket.onGranted(backend);
    this.inHand.topUp();
    return true;
  }

  /** This replica drains: no more grants in advance, and those in hand go back. */
  leave(): void {
    this.inHand.leave();
  }

  // ---- requests waiting at a remote scheduler ----

  private sendAdmit(ticket: ScheduledTicket, again: boolean): void {
    if (ticket.clusterId === 0) {
      ticket.clusterId = ++this.nextId;
      this.mine.set(ticket.clusterId, ticket);
    }
    this.knownBy(ticket.clusterId, this.scheduler);
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
      // The link to the holder of the vote is down: the vote is back here, and so is the request.
      this.unwait(ticket);
      this.takeBack();
      this.resubmit(ticket);
    }
  }

  /** Records that `peer` knows request `id` of this replica (its end goes there too). */
  private knownBy(id: number, peer: string): void {
    const at = this.knownAt.get(id);
    if (!at) this.knownAt.set(id, [peer]);
    else if (!at.includes(peer)) at.push(peer);
  }

  /** Sends `message` about request `id` to every replica that knows it. */
  private tell(id: number, message: ClusterMessage): void {
    for (const peer of this.knownAt.get(id) ?? []) {
      if (peer !== ANY_PEER) this.cluster.send(peer, message);
      else for (const p of this.cluster.peers()) if (p.url !== this.cluster.self) this.cluster.send(p.url, message);
    }
  }

  /** A request of ours no longer waits remotely (granted, refused or moved). */
  private unwait(ticket: ScheduledTicket): void {
    if (ticket.state !== 'queued') return;
    ticket.state = 'new';
    this.waitingRemotely--;
  }

  /** A request of ours is over here, or is to be scheduled here afresh: every replica that knows it hears so. */
  private forgetMine(ticket: ScheduledTicket): void {
    const id = ticket.clusterId;
    this.unwait(ticket);
    this.tell(id, { t: 'adm.done', p: this.poolName, id });
    this.knownAt.delete(id);
    this.mine.delete(id);
    ticket.clusterId = 0;
  }

  private onGrant(from: string, m: ClusterMessage): void {
    if (this.inHand.answer(from, Number(m.id), m)) return;
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
    if (this.inHand.answer(from, Number(m.id), m)) return;
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
    if (ticket instanceof HostedTicket || ticket.clusterId === 0) return;
    const message: Record<string, unknown> = { t: 'adm.release', p: this.poolName, id: ticket.clusterId, n: lease.attempt, o: outcome };
    if (latencyMs !== undefined) message.l = latencyMs;
    this.tell(ticket.clusterId, message as ClusterMessage);
  }

  /** To the holder of this replica's vote (false in local mode, or when its link is down). */
  private send(message: ClusterMessage): boolean {
    return this.mode === 'remote' && this.cluster.send(this.scheduler, message);
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
    if (!this.votes.has(from)) {
      // Its vote is not here (handed back, or it gives it to another): it asks wherever its vote is.
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

  // ---- votes held here (this replica schedules for the peers that gave them) ----

  /**
   * A peer gives its vote (`v`) with what it has running: counted here, its conversations remembered,
   * its turns held, and from now on its share is used here while it is in contact. A replica that
   * does not schedule the pool hands the vote straight back.
   */
  private onReport(from: string, m: ClusterMessage): void {
    if (!Array.isArray(m.leases) || typeof m.v !== 'number') return;
    if (this.mode !== 'local' || this.target() !== this.cluster.self) {
      // Handed back with what the sender passed on and what runs here: the sender dropped its
      // counts of those when it gave the vote, and they may run on its share.
      const passedOn = (m.leases as ReportEntry[]).filter((e) => e !== null && typeof e === 'object' && typeof e.via === 'string' && e.via !== this.cluster.self);
      this.cluster.send(from, { t: 'adm.unvoted', p: this.poolName, v: m.v, w: m.w, leases: [...passedOn, ...this.handoverFor(from)] });
      return;
    }
    const wait = typeof m.w === 'number' && m.w > 0 ? Math.min(m.w, this.settleMs) : 0;
    this.votes.set(from, { v: m.v, usableAtMs: this.pool.now() + wait });
    if (wait > 0) setTimeout(() => this.capAll(), wait + 1).unref();
    const map = this.hostedOf(from);
    const entries = m.leases as ReportEntry[];
    const reported = new Set<number>();
    // Ids are handed out in order: one above `u` is newer than the report (known here through another replica).
    const upTo = typeof m.u === 'number' ? m.u : Infinity;
    for (const e of entries) if (e && typeof e.via !== 'string') reported.add(Number(e.id));
    // What this replica counts for the peer and the peer no longer runs has ended (its end went
    // elsewhere, or was lost with a link): gone before the peer's requests take their turns. Grants
    // lent to it and not claimed are free again: it gave back every grant in hand when its vote left.
    for (const ticket of [...map.values()]) {
      if (reported.has(ticket.id) || ticket.id > upTo) {
        this.lent.delete(ticket); // claimed: the claim is on its way or here
        continue;
      }
      map.delete(ticket.id);
      if (ticket.state === 'queued') this.admission.cancel(ticket);
      this.endHosted(ticket);
    }
    this.countRunning(from, entries);
    this.capAll();
  }

  /**
   * Counts here the running requests `from` lists: its own, and others' `via` their owners (what
   * the owner itself reports is the truth; this replica's own requests it knows). Each other owner
   * is asked which of its requests still live, and from then on tells this replica of their ends.
   */
  private countRunning(from: string, entries: readonly ReportEntry[]): void {
    const owners = new Set<string>();
    for (const e of entries) {
      if (!e) continue;
      const id = Number(e.id);
      const owner = typeof e.via === 'string' ? e.via : from;
      if (owner !== from && (owner === this.cluster.self || this.votes.has(owner))) continue;
      const owned = this.hostedOf(owner);
      const backend = typeof e.pod === 'string' ? this.pool.get(e.pod) : undefined;
      if (!Number.isSafeInteger(id) || !backend || owned.has(id)) continue;
      const ticket = new HostedTicket(this, owner, id);
      ticket.adopted = owner !== from;
      if (ticket.adopted) owners.add(owner);
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
    for (const owner of owners) this.cluster.send(owner, { t: 'adm.which', p: this.poolName });
  }

  /** A voter asks for its vote back: its share is no longer used here, and it hears what runs here. */
  private onUnvote(from: string, m: ClusterMessage): void {
    if (this.votes.get(from)?.v === m.v) this.releaseVote(from);
    else this.cluster.send(from, { t: 'adm.unvoted', p: this.poolName, v: m.v, leases: this.handoverFor(from) });
  }

  /**
   * Gives a peer's vote back (it asked, its link is down, or this replica stops scheduling): its
   * waiting requests go back to it (it asks wherever its vote goes next), its running ones stay
   * counted here until they end, and it learns what this replica's regime runs, to pass it on.
   */
  private releaseVote(peer: string): void {
    const vote = this.votes.get(peer);
    if (vote === undefined) return;
    this.votes.delete(peer);
    this.capAll();
    const map = this.hosted.get(peer);
    for (const ticket of map ? [...map.values()] : []) {
      if (ticket.lent) {
        if (!ticket.revoked) this.cluster.send(peer, { t: 'adm.revoke', p: this.poolName, id: ticket.id });
        ticket.revoked = true;
      }
      if (ticket.state !== 'queued') continue;
      this.admission.cancel(ticket);
      map!.delete(ticket.id);
      this.endHosted(ticket);
      this.cluster.send(peer, { t: 'adm.reject', p: this.poolName, id: ticket.id, c: 'NOT_SCHEDULER' });
    }
    const w = Math.max(0, vote.usableAtMs - this.pool.now());
    this.cluster.send(peer, { t: 'adm.unvoted', p: this.poolName, v: vote.v, w, leases: this.handoverFor(peer) });
  }

  /**
   * What runs under this replica's scheduling, for a voter to pass on (`via` the owner): its own
   * requests (whose ends then go to every peer: it cannot know where the voter takes them) and
   * those it granted to or counts for other replicas, not the voter's own (the voter reports those).
   */
  private handoverFor(voter: string): object[] {
    return [...this.ownEntries(ANY_PEER, this.cluster.self), ...this.hostedEntries(voter)];
  }

  /** This replica's own running requests as entries (`via` self when passed on by another); each is then known at `knownAt`. */
  private ownEntries(knownAt: string, via?: string): object[] {
    const entries: object[] = [];
    for (const lease of this.leases) {
      const ticket = lease.holder as ScheduledTicket;
      if (ticket instanceof HostedTicket) continue;
      this.knownBy(this.idOf(ticket), knownAt);
      entries.push(this.entry(ticket, lease.backend.key, lease.attempt, via));
    }
    return entries;
  }

  /** A report entry: a running request, its pod and attempt, its conversation and turn; `via` its owner when not the sender. */
  private entry(ticket: ScheduledTicket, pod: string, attempt: number, via?: string): object {
    const entry: Record<string, unknown> = { id: ticket instanceof HostedTicket ? ticket.id : ticket.clusterId, pod, n: attempt };
    if (via !== undefined) entry.via = via;
    if (ticket.conversationKey !== undefined) entry.k = ticket.conversationKey;
    if (ticket.holdsTurn) entry.turn = 1;
    return entry;
  }

  /** This replica's id for its own request (assigned once it is known elsewhere). */
  private idOf(ticket: ScheduledTicket): number {
    if (ticket.clusterId === 0) {
      ticket.clusterId = ++this.nextId;
      this.mine.set(ticket.clusterId, ticket);
    }
    return ticket.clusterId;
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

  /**
   * A peer is alive again (its link came back): it hears which of this replica's requests still
   * live, by id, so it ends what it counts for this replica and missed the end of (the `adm.done`
   * went out while the link was down). Sent only then; what it lists is what runs or waits now.
   */
  peerAlive(peer: string): void {
    const ids = [...this.mine.keys(), ...this.inHand.ids()];
    this.cluster.send(peer, { t: 'adm.live', p: this.poolName, ids, u: this.nextId });
  }

  /** A peer counts some of this replica's requests (passed on by another): it hears which live, and of their ends. */
  private onWhich(from: string): void {
    for (const id of this.mine.keys()) this.knownBy(id, from);
    this.peerAlive(from);
  }

  private onLive(from: string, m: ClusterMessage): void {
    const map = this.hosted.get(from);
    if (!map || !Array.isArray(m.ids)) return;
    const live = new Set(m.ids.map(Number));
    const upTo = typeof m.u === 'number' ? m.u : Infinity; // newer ids than the list: known here through another replica
    for (const ticket of [...map.values()]) {
      if (live.has(ticket.id) || ticket.id > upTo) continue;
      map.delete(ticket.id);
      if (ticket.state === 'queued') this.admission.cancel(ticket);
      this.endHosted(ticket);
    }
  }

  /**
   * A peer came back as a new process (`restarted`: its requests here are gone with the old one) or
   * turned dead. Dead only means not heard from: a replica cut off still runs its requests, so they
   * stay counted for settleMs more (the take-over wait: what a lost scheduler's requests get too),
   * or until it is back and lists what lives (`adm.live`), or restarts. Its waiting requests go.
   */
  dropPeer(peer: string, restarted = true): void {
    this.votes.delete(peer);
    if (this.mode === 'remote' && this.scheduler === peer) this.takeBack(); // the holder's count is gone with it
    const map = this.hosted.get(peer);
    if (!map) return;
    for (const ticket of [...map.values()]) {
      if (!restarted && ticket.state === 'granted') continue;
      map.delete(ticket.id);
      if (ticket.state === 'queued') this.admission.cancel(ticket);
      this.endHosted(ticket);
    }
    if (restarted || map.size === 0) return;
    const running = new Set(map.values());
    setTimeout(() => {
      for (const ticket of running) {
        if (map.get(ticket.id) !== ticket) continue;
        map.delete(ticket.id);
        this.endHosted(ticket);
      }
    }, this.settleMs).unref();
  }

  private countHosted(state: 'queued' | 'granted'): number {
    let n = 0;
    for (const map of this.hosted.values()) for (const t of map.values()) if (t.state === state) n++;
    return n;
  }

  // ---- where this replica's vote goes, and with how many slots it schedules ----

  /** Re-reads who schedules the pool and who is in contact; called on every cluster change that may move them. */
  update(): void {
    this.dropUnlinkedVotes();
    this.moveVote();
    this.capAll();
  }

  /** Where the election says this replica's vote belongs: the scheduler, or itself without one. */
  private target(): string {
    return this.cluster.schedulerOf(this.poolName) ?? this.cluster.self;
  }

  /** A voter whose link closed takes its vote back by itself (it does on a closed link): so does this replica. */
  private dropUnlinkedVotes(): void {
    for (const peer of [...this.votes.keys()]) if (!this.cluster.linked(peer)) this.releaseVote(peer);
  }

  /** Moves the vote towards the target: asks the holder for it back, takes it back, or gives it. */
  private moveVote(): void {
    const target = this.target();
    if (this.mode === 'remote') {
      const holder = this.scheduler;
      const state = this.cluster.peers().find((p) => p.url === holder)?.state;
      if (this.cluster.linked(holder) && state !== undefined && state !== 'dead') {
        if (holder !== target && !this.unvoting) {
          this.unvoting = true;
          this.cluster.send(holder, { t: 'adm.unvote', p: this.poolName, v: this.vote });
        }
        return;
      }
      // The link closed or the holder is dead: it no longer counts this vote (see the header).
      this.takeBack();
    }
    // Not to a peer out of reach (the election catches up with a closed link a moment later).
    if (target === this.cluster.self || !this.cluster.linked(target)) return;
    const wait = this.bounced && this.bounced.peer === target ? this.bounced.untilMs - this.pool.now() : 0;
    if (wait > 0) {
      this.voteTimer ??= setTimeout(() => {
        this.voteTimer = undefined;
        this.update();
      }, wait);
      this.voteTimer.unref();
      return;
    }
    this.giveVote(target);
  }

  /** The holder answered `adm.unvote`, or handed the vote back by itself: it is here again. */
  private onUnvoted(from: string, m: ClusterMessage): void {
    if (this.mode !== 'remote' || from !== this.scheduler || m.v !== this.vote) return;
    const asked = this.unvoting;
    if (!asked) this.bounced = { peer: from, untilMs: this.pool.now() + VOTE_AGAIN_MS };
    const entries = (Array.isArray(m.leases) ? m.leases : []).filter((e: ReportEntry) => e !== null && typeof e === 'object' && e.via !== this.cluster.self) as NonNullable<ReportEntry>[];
    // The rest of a wait its holder had for it (its share may carry a lost scheduler's requests).
    if (typeof m.w === 'number' && m.w > 0) this.settleFor(Math.min(m.w, this.settleMs), true);
    const target = this.target();
    if (asked && target !== this.cluster.self && this.cluster.linked(target)) {
      // Straight on to the target, with what the holder's regime runs: no moment of scheduling
      // here in between, when those requests would run on this replica's share unknown to it.
      this.forward = entries as object[];
      this.giveVote(target);
      return;
    }
    // Counted before the vote is back: taking it back re-submits this replica's waiters at once.
    this.countRunning(from, entries);
    this.takeBack(true);
    this.update();
  }

  /**
   * Gives this replica's vote to `target`: the votes held here go back to their givers first (each
   * hears what runs here), then the vote goes with everything this replica knows runs: its own
   * requests, those it granted to others, and what the previous holder passed on.
   */
  private giveVote(target: string): void {
    this.inHand.dropAll();
    for (const peer of [...this.votes.keys()]) this.releaseVote(peer);
    const leases = [...this.ownEntries(target), ...this.hostedEntries(undefined), ...this.forward];
    // This replica's waiters out of its queue first (they go to the holder below): raising the caps
    // hands free slots to whoever waits, and from here on no local grant may happen.
    const moved = this.mode === 'local' ? this.takeLocalWaiters() : [];
    const waitingAtHolder = this.mode === 'remote' ? [...this.mine.values()].filter((t) => t.state === 'queued') : [];
    for (const t of waitingAtHolder) this.unwait(t);
    this.mode = 'remote';
    this.scheduler = target;
    this.vote++;
    this.unvoting = false;
    this.bounced = undefined;
    this.forward = [];
    this.adopted.clear();
    this.capAll();
    const w = Math.max(0, this.settledAtMs - this.pool.now());
    const sent = this.cluster.send(target, { t: 'adm.report', p: this.poolName, v: this.vote, w, u: this.nextId, leases });
    if (!sent) this.takeBack(true);
    // Reported: what this replica counted for others is the new holder's to count.
    else this.endHostedAll();
    for (const t of [...waitingAtHolder, ...moved]) this.resubmit(t);
    this.inHand.topUp();
  }

  /**
   * The vote is here again: this replica schedules its own requests (on its share, and its voters').
   * Not `answered` (the holder's link closed, it died or restarted): what the holder's regime runs
   * is unknown here, and it may be running on this replica's share. So the share is not used for
   * settleMs, by this replica or by whoever it gives the vote to next (`w` travels with the vote):
   * meanwhile the live peers report what they run as they give their votes, and the requests the
   * holder's own clients had running get that long to end (a killed holder's requests still run in
   * the pods). Without this, a pod ran 3 requests with 2 slots right after the scheduler was killed.
   */
  private takeBack(answered = false): void {
    if (this.mode === 'local') return;
    if (!answered) this.settleFor(this.settleMs);
    this.inHand.dropAll();
    this.mode = 'local';
    this.scheduler = this.cluster.self;
    this.unvoting = false;
    const waiting = [...this.mine.values()].filter((t) => t.state === 'queued');
    for (const t of waiting) this.unwait(t);
    this.adoptMine();
    this.capAll();
    for (const t of waiting) this.resubmit(t);
  }

  private endHostedAll(): void {
    const all = [...this.hosted.values()].flatMap((map) => [...map.values()]);
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

  /**
   * Running requests this replica granted to or counts for other replicas (except `skip`'s), as
   * entries `via` their owners. Grants lent in advance count as running: the peer may claim one
   * any time until it gives it back (a claim lost with a link once ran uncounted anywhere).
   */
  private hostedEntries(skip: string | undefined): object[] {
    const entries: object[] = [];
    for (const [peer, map] of this.hosted) {
      if (peer === skip) continue;
      for (const ticket of map.values()) {
        const lease = ticket.lease;
        if (ticket.state === 'granted' && lease) entries.push(this.entry(ticket, lease.backend.key, lease.attempt, peer));
      }
    }
    return entries;
  }

  /** Scheduling here again: this replica's requests granted elsewhere are its own to schedule on. */
  private adoptMine(): void {
    for (const ticket of this.mine.values()) {
      const key = ticket.conversationKey;
      if (ticket.state !== 'granted' || this.adopted.has(ticket)) continue;
      this.adopted.add(ticket);
      if (key === undefined || !ticket.backend) continue;
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

  /** This replica's own share is not used for `ms` (`atLeast`: unless it already waits longer). */
  private settleFor(ms: number, atLeast = false): void {
    if (atLeast && this.settledAtMs >= this.pool.now() + ms) return;
    this.settledAtMs = this.pool.now() + ms;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.capAll(), ms + 1);
    this.settleTimer.unref();
  }

  /**
   * The votes whose shares this replica may use now: its own, and its voters' while in contact; a
   * share taken back unanswered only once its wait is over (`takeBack`), wherever it went since.
   */
  private countedVotes(): string[] {
    if (this.mode === 'remote') return [];
    const now = this.pool.now();
    const counted = now < this.settledAtMs ? [] : [this.cluster.self];
    for (const [peer, vote] of this.votes) if (now >= vote.usableAtMs && this.cluster.inContact(peer)) counted.push(peer);
    return counted;
  }

  private capAll(): void {
    const replicas = this.shareReplicas();
    const counted = this.countedVotes();
    for (const b of this.pool.backends) this.capOne(b, replicas, counted);
  }

  private capOne(backend: Backend, replicas: readonly string[], counted: readonly string[]): void {
    this.pool.setCap(backend, this.mode === 'remote' ? Infinity : sharesHeld(backend.key, backend.limit, replicas, counted));
  }

  /** Message handlers, by type (one set for all pools: `attachClusterScheduling` routes by pool). */
  private readonly handlers: Readonly<Record<MessageType, (from: string, m: ClusterMessage) => void>> = {
    'adm.admit': (from, m) => this.onAdmit(from, m),
    'adm.grant': (from, m) => this.onGrant(from, m),
    'adm.reject': (from, m) => this.onReject(from, m),
    'adm.release': (from, m) => this.onRelease(from, m),
    'adm.done': (from, m) => this.onDone(from, m),
    'adm.remember': (_from, m) => this.onRemember(m),
    'adm.report': (from, m) => this.onReport(from, m),
    'adm.sticky': (from, m) => this.onSticky(from, m),
    'adm.claim': (from, m) => this.onClaim(from, m),
    'adm.revoke': (from, m) => this.inHand.revoke(from, m),
    'adm.unvote': (from, m) => this.onUnvote(from, m),
    'adm.unvoted': (from, m) => this.onUnvoted(from, m),
    'adm.live': (from, m) => this.onLive(from, m),
    'adm.which': (from) => this.onWhich(from),
  };

  handle(type: MessageType, from: string, m: ClusterMessage): void {
    this.handlers[type](from, m);
  }
}

export const messageTypes = ['adm.admit', 'adm.grant', 'adm.reject', 'adm.release', 'adm.done', 'adm.remember', 'adm.report', 'adm.sticky', 'adm.claim', 'adm.revoke', 'adm.unvote', 'adm.unvoted', 'adm.live', 'adm.which'] as const;
type MessageType = (typeof messageTypes)[number];

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
    if (state === 'dead') for (const s of schedulers.values()) s.dropPeer(url, false);
    if (state === 'alive') for (const s of schedulers.values()) s.peerAlive(url);
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
