/**
 * One replica's cluster member: the transport (links), membership (states, quorum), the scheduler
 * elector and the message handlers, driven by one timer. Every heartbeatMs it sends a heartbeat on
 * every link, re-evaluates the peers' states (dropping the link of a peer turned dead, so it is
 * redialled fresh) and compares each pool's scheduler with the last answer; link events do the same
 * at once, so a dropped link turns its peer suspect and moves its pools without waiting for the tick.
 *
 * Handlers run inside a boundary: one that throws is logged and counted
 * (`gateway_cluster_handler_errors_total`) and the link carries on. Listeners of state and scheduler
 * changes are guarded alike. Messages of a type nobody handles are counted as `unknown` and dropped.
 */
import { randomUUID } from 'node:crypto';
import type { ClusterConfig } from '../config.js';
import { connector } from '../kubernetes/client.js';
import type { Cluster, ClusterDeps, ClusterLogger } from './cluster.js';
import type { SchedulerElector } from './elector.js';
import type { ClusterMessage } from './frame.js';
import { LeaseElector } from './lease-elector.js';
import { Membership, type PeerState } from './membership.js';
import { kubernetesPeers, staticPeers, type PeerSource } from './peer-source.js';
import { StaticElector } from './static-elector.js';
import { Transport } from './transport.js';

type Handler = (from: string, message: ClusterMessage) => void;

const silentLogger: ClusterLogger = { info() {}, warn() {}, error() {}, debug() {} };

export class ClusterNode implements Cluster {
  readonly self: string;
  private readonly logger: ClusterLogger;
  private readonly now: () => number;
  private readonly membership: Membership;
  private readonly transport: Transport;
  private readonly elector: SchedulerElector;
  private readonly handlers = new Map<string, Handler>();
  private readonly schedulerListeners: ((pool: string, scheduler: string | null) => void)[] = [];
  private readonly stateListeners: ((url: string, state: PeerState) => void)[] = [];
  private readonly restartListeners: ((url: string) => void)[] = [];
  private readonly schedulers = new Map<string, string | null>();
  private pools: readonly string[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The peer set has been delivered once: before that, no quorum (a replica alone would count as a majority of one). */
  private synced = false;
  private quorum = false;
  private stopped = false;

  static async create(config: ClusterConfig, deps: ClusterDeps): Promise<ClusterNode> {
    const logger = deps.logger ?? silentLogger;
    const source =
      deps.peerSource ??
      (config.peers ? staticPeers(config.peers) : await kubernetesPeers(config.kubernetes!, logger, deps.kubeConfig));
    return new ClusterNode(config, deps, source);
  }

  private constructor(
    private readonly config: ClusterConfig,
    private readonly deps: ClusterDeps,
    private readonly source: PeerSource,
  ) {
    this.self = config.advertise;
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? (() => performance.now());
    this.membership = new Membership({ self: this.self, deadAfterMs: config.deadAfterMs });
    this.transport = new Transport({
      self: this.self,
      listen: config.listen,
      incarnation: randomUUID(),
      logger: this.logger,
      helloTimeoutMs: Math.min(5000, config.deadAfterMs),
      backoff: { initialMs: Math.min(50, config.heartbeatMs), maxMs: Math.max(1000, config.heartbeatMs * 4) },
      ...(deps.random ? { random: deps.random } : {}),
      events: {
        linkUp: (peer, incarnation) => this.linkUp(peer, incarnation),
        linkDown: (peer) => {
          this.membership.linkDown(peer);
          this.evaluate();
        },
        message: (peer, message) => this.received(peer, message),
        linkError: (reason) => deps.metrics?.linkError(reason),
      },
    });
    const context = {
      self: this.self,
      hasQuorum: () => this.hasQuorum(),
      alive: () => this.membership.alive(),
      isLive: (url: string) => {
        const state = this.membership.stateOf(url);
        return state !== undefined && state !== 'dead';
      },
      changed: () => this.compareSchedulers(),
    };
    const k = config.kubernetes;
    this.elector = k
      ? new LeaseElector(context, {
          namespace: k.namespace,
          service: k.service,
          leaseDurationSeconds: k.leaseDurationSeconds,
          connect: connector(deps.kubeConfig),
          logger: this.logger,
          ...(deps.now ? { now: deps.now } : {}),
        })
      : new StaticElector(context);
  }

  peers(): readonly { readonly url: string; readonly state: PeerState }[] {
    return this.membership.peers();
  }

  hasQuorum(): boolean {
    return this.synced && !this.stopped && this.membership.hasQuorum(this.now());
  }

  linked(peer: string): boolean {
    return !this.stopped && this.transport.isLinked(peer);
  }

  inContact(peer: string): boolean {
    return !this.stopped && this.membership.inContact(peer, this.now());
  }

  schedulerOf(pool: string): string | null {
    return this.stopped ? null : this.elector.schedulerOf(pool);
  }

  onSchedulerChange(listener: (pool: string, scheduler: string | null) => void): void {
    this.schedulerListeners.push(listener);
  }

  onPeerState(listener: (url: string, state: PeerState) => void): void {
    this.stateListeners.push(listener);
  }

  onPeerRestart(listener: (url: string) => void): void {
    this.restartListeners.push(listener);
  }

  send(peer: string, message: ClusterMessage): boolean {
    if (message.t.startsWith('sys.')) throw new Error(`cluster message types starting sys. are reserved (got ${message.t})`);
    if (peer === this.self) {
      if (this.stopped) return false;
      queueMicrotask(() => this.dispatch(this.self, message));
    } else if (!this.transport.send(peer, message)) {
      return false;
    }
    this.deps.metrics?.message(message.t, 'out');
    return true;
  }

  on(type: string, handler: Handler): void {
    if (type.startsWith('sys.')) throw new Error(`cluster message types starting sys. are reserved (got ${type})`);
    this.handlers.set(type, handler);
  }

  async start(pools: readonly string[]): Promise<void> {
    this.pools = [...pools];
    for (const pool of this.pools) this.schedulers.set(pool, null);
    await this.transport.start();
    this.timer = setInterval(() => this.tick(), this.config.heartbeatMs);
    this.timer.unref();
    this.elector.start(this.pools);
    this.source
      .start((peers) => this.peersChanged(peers))
      .catch((err: unknown) => this.logger.error({ err }, 'cluster membership source failed to start'));
    this.logger.info({ self: this.self, membership: this.source.description, listen: `${this.config.listen.host}:${this.config.listen.port}` }, 'cluster listening');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.source.stop();
    await this.elector.stop();
    await this.transport.stop();
  }

  private peersChanged(peers: readonly string[]): void {
    if (this.stopped) return;
    this.membership.setKnown(peers, this.now());
    this.transport.setPeers(this.membership.knownPeers);
    this.synced = true;
    this.evaluate();
  }

  private linkUp(peer: string, incarnation: string): void {
    const restarted = this.membership.linkUp(peer, incarnation, this.now());
    this.transport.send(peer, this.membership.heartbeatFor(peer, this.now()));
    if (restarted) {
      this.logger.info({ peer }, 'cluster peer restarted');
      for (const listener of this.restartListeners) this.guard(() => listener(peer), 'peer restart listener');
    }
    this.evaluate();
  }

  private tick(): void {
    const now = this.now();
    for (const peer of this.membership.knownPeers) {
      if (peer !== this.self && this.transport.isLinked(peer)) this.transport.send(peer, this.membership.heartbeatFor(peer, now));
    }
    this.evaluate();
  }

  /** Peer states, then schedulers: what changed is announced. */
  private evaluate(): void {
    if (this.stopped) return;
    for (const [url, state] of this.membership.evaluate(this.now())) {
      if (state === 'dead') this.transport.drop(url, 'peer dead');
      this.logger.info({ peer: url, state }, `cluster peer ${state}`);
      for (const listener of this.stateListeners) this.guard(() => listener(url, state), 'peer state listener');
    }
    this.quorum = this.hasQuorum();
    this.elector.membershipChanged();
    this.compareSchedulers();
  }

  private compareSchedulers(): void {
    if (this.stopped) return;
    for (const pool of this.pools) {
      const scheduler = this.schedulerOf(pool);
      if (scheduler === this.schedulers.get(pool)) continue;
      this.schedulers.set(pool, scheduler);
      this.logger.info({ pool, scheduler }, scheduler === null ? 'cluster pool has no scheduler' : 'cluster pool scheduler');
      for (const listener of this.schedulerListeners) this.guard(() => listener(pool, scheduler), 'scheduler listener');
    }
  }

  private received(peer: string, message: ClusterMessage): void {
    this.membership.heard(peer, this.now());
    if (message.t === 'sys.hb') {
      this.deps.metrics?.message('sys.hb', 'in');
      this.membership.heartbeat(peer, message);
      // Quorum (re)gained shows at once, not a tick later.
      if (!this.quorum && this.hasQuorum()) this.evaluate();
      return;
    }
    this.dispatch(peer, message);
  }

  private dispatch(from: string, message: ClusterMessage): void {
    const handler = this.handlers.get(message.t);
    this.deps.metrics?.message(handler ? message.t : 'unknown', 'in');
    if (!handler) return;
    try {
      handler(from, message);
    } catch (err) {
      this.deps.metrics?.handlerError(message.t);
      this.logger.error({ err, from, type: message.t }, 'cluster message handler threw; message dropped, link kept');
    }
  }

  private guard(fn: () => void, what: string): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err }, `cluster ${what} threw`);
    }
  }
}
