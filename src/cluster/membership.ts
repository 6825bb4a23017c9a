/**
 * Membership and failure detection: each known peer is `alive`, `suspect` or `dead`, and this
 * replica has quorum while it is in contact with a strict majority of the known set (itself
 * included). Pure state over an injected clock: the node feeds it link events and heartbeats and
 * calls `evaluate(now)`; nothing here does I/O or keeps timers, so every rule is testable.
 *
 * States, by this replica's own monotonic clock (`lastHeard`: when anything last arrived from the peer):
 * - `alive`: linked, and heard from within deadAfterMs/2;
 * - `suspect`: the link is down (a replica killed on a live host closes its sockets, so this is
 *   immediate), or nothing heard for deadAfterMs/2;
 * - `dead`: nothing heard for deadAfterMs. A peer that was never heard counts from when it became known.
 *
 * Contact for quorum is stricter than "heard from": every heartbeat carries the sender's clock `s`
 * and echoes `e`, the latest `s` it received from the recipient. A peer is in contact while the
 * latest echo of this replica's own timestamp is younger than deadAfterMs/2. Because the echoed
 * value was read from this replica's clock when it sent that heartbeat, no two clocks are ever
 * compared, and messages that waited in a socket buffer (an event-loop stall, a partition that
 * heals) cannot make stale contact look fresh.
 *
 * The partition guarantee the admission side relies on. Assumption: the replicas' monotonic clocks
 * advance at the same rate within a factor of 1.5 (real drift is parts per million); nothing is
 * assumed about their offsets or about message delays. Let `s` be the send time of the newest
 * heartbeat of replica R that peer M echoed back. Then:
 * 1. R counts M in quorum only until `s + deadAfterMs/2` (R's clock). If R is cut off at time t, no
 *    echo newer than t can arrive, so R learns it has lost quorum at the latest at t + deadAfterMs/2.
 * 2. M received that heartbeat after R sent it, so M heard from R no earlier than `s`, and M
 *    declares R dead no earlier than `s + deadAfterMs` (M's clock).
 * Hence a replica cut off from the majority stops counting on its quorum (and on its full share of
 * slots) at least deadAfterMs/2 before any replica of the majority considers it dead and hands its
 * slots to others. `hasQuorum(now)` is exact at the moment it is called; state-change events follow
 * within one evaluation period (the node evaluates every heartbeatMs and on every link event).
 */
import type { ClusterMessage } from './frame.js';

export type PeerState = 'alive' | 'suspect' | 'dead';

interface PeerRecord {
  linked: boolean;
  /** When anything last arrived (or when the peer became known, if never). */
  lastHeard: number;
  /** The newest of this replica's own heartbeat timestamps the peer echoed (-Infinity: none). */
  ackedAt: number;
  /** The newest `s` received from the peer, echoed in the next heartbeat to it. */
  theirs: number | undefined;
  incarnation: string | undefined;
  state: PeerState;
}

export interface MembershipOptions {
  readonly self: string;
  readonly deadAfterMs: number;
}

export interface PeerView {
  readonly url: string;
  readonly state: PeerState;
}

export class Membership {
  readonly self: string;
  private readonly deadAfterMs: number;
  private readonly contactMs: number;
  private readonly records = new Map<string, PeerRecord>();
  /** The known set (self included), sorted; links from others are tracked but not counted. */
  private known: readonly string[];

  constructor(options: MembershipOptions) {
    this.self = options.self;
    this.deadAfterMs = options.deadAfterMs;
    this.contactMs = options.deadAfterMs / 2;
    this.known = [this.self];
  }

  /** The known peer set; self is always in it. Returns the peers that joined it. */
  setKnown(urls: Iterable<string>, now: number): string[] {
    const next = [...new Set([this.self, ...urls])].sort();
    const added = next.filter((u) => u !== this.self && !this.known.includes(u));
    for (const url of added) {
      const r = this.record(url, now);
      if (!r.linked) r.lastHeard = Math.max(r.lastHeard, now);
    }
    this.known = next;
    return added;
  }

  get knownPeers(): readonly string[] {
    return this.known;
  }

  /** A link is up; returns true when the peer is a new incarnation of one seen before (it restarted). */
  linkUp(url: string, incarnation: string, now: number): boolean {
    const r = this.record(url, now);
    const restarted = r.incarnation !== undefined && r.incarnation !== incarnation;
    r.linked = true;
    r.lastHeard = now;
    r.incarnation = incarnation;
    if (restarted) {
      r.ackedAt = -Infinity;
      r.theirs = undefined;
    }
    return restarted;
  }

  linkDown(url: string): void {
    const r = this.records.get(url);
    if (r) r.linked = false;
  }

  /** Anything arrived from `url`. */
  heard(url: string, now: number): void {
    const r = this.records.get(url);
    if (r) r.lastHeard = now;
  }

  /** A `sys.hb` arrived: remember its timestamp to echo, and take its echo of ours. */
  heartbeat(url: string, message: ClusterMessage): void {
    const r = this.records.get(url);
    if (!r) return;
    if (typeof message.s === 'number' && Number.isFinite(message.s)) r.theirs = message.s;
    if (typeof message.e === 'number' && Number.isFinite(message.e) && message.e > r.ackedAt) r.ackedAt = message.e;
  }

  /** The heartbeat to send to `url` now. */
  heartbeatFor(url: string, now: number): ClusterMessage {
    const theirs = this.records.get(url)?.theirs;
    return theirs === undefined ? { t: 'sys.hb', s: now } : { t: 'sys.hb', s: now, e: theirs };
  }

  /** Recomputes every known peer's state; returns those that changed. */
  evaluate(now: number): [string, PeerState][] {
    const changed: [string, PeerState][] = [];
    for (const url of this.known) {
      if (url === this.self) continue;
      const r = this.records.get(url)!;
      const silentMs = now - r.lastHeard;
      const state: PeerState = silentMs >= this.deadAfterMs ? 'dead' : !r.linked || silentMs >= this.contactMs ? 'suspect' : 'alive';
      if (state !== r.state) {
        r.state = state;
        changed.push([url, state]);
      }
    }
    return changed;
  }

  stateOf(url: string): PeerState | undefined {
    if (url === this.self) return 'alive';
    return this.known.includes(url) ? this.records.get(url)?.state : undefined;
  }

  /** Known peers with their last evaluated state; self first, always alive. */
  peers(): PeerView[] {
    return [{ url: this.self, state: 'alive' as PeerState }, ...this.known.filter((u) => u !== this.self).map((url) => ({ url, state: this.records.get(url)!.state }))];
  }

  /** Known replicas in state alive, self included, sorted. */
  alive(): string[] {
    return this.known.filter((u) => u === this.self || this.records.get(u)?.state === 'alive');
  }

  inContact(url: string, now: number): boolean {
    const r = this.records.get(url);
    return r !== undefined && r.linked && now - r.ackedAt < this.contactMs;
  }

  /** In contact with a strict majority of the known set, self included; exact at `now`. */
  hasQuorum(now: number): boolean {
    let contacts = 1;
    for (const url of this.known) if (url !== this.self && this.inContact(url, now)) contacts++;
    return contacts * 2 > this.known.length;
  }

  private record(url: string, now: number): PeerRecord {
    let r = this.records.get(url);
    if (!r) {
      r = { linked: false, lastHeard: now, ackedAt: -Infinity, theirs: undefined, incarnation: undefined, state: 'suspect' };
      this.records.set(url, r);
    }
    return r;
  }
}
