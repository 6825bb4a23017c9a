/**
 * The cluster seam: what the admission side (src/admission/, src/pool/, src/proxy/) sees of the
 * other gateway replicas. One replica per pool schedules (holds the queue); every replica keeps its
 * own clients and proxies to the pods itself, and only small messages travel between replicas, over
 * one persistent link per pair (transport.ts). Membership and failure detection are in
 * membership.ts (with the partition guarantee), the election in static-elector.ts / lease-elector.ts,
 * degraded-mode slot shares in shares.ts; node.ts puts them together.
 *
 * Message types starting `sys.` belong to this layer (hello, heartbeat); others (`adm.*`) are the
 * admission side's. `send` to this replica itself is delivered locally, asynchronously and in order,
 * so a caller may treat "the scheduler is me" like any other peer.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { ClusterConfig } from '../config.js';
import type { ClusterMetrics } from '../metrics/cluster-metrics.js';
import { ClusterNode } from './node.js';
import type { PeerSource } from './peer-source.js';
import type { ClusterMessage } from './frame.js';
import type { PeerState } from './membership.js';

export type { ClusterMessage } from './frame.js';
export type { PeerState } from './membership.js';
export { shareOf, sharesHeld } from './shares.js';

export interface Cluster {
  /** This replica's advertise URL. */
  readonly self: string;
  /** The known replicas, self first (always alive). */
  peers(): readonly { readonly url: string; readonly state: PeerState }[];
  /** In contact with a strict majority of the known replicas (self counts); false until the peer set is first known. */
  hasQuorum(): boolean;
  /** The link to `peer` is up now (a closed link shows at once: a killed replica's sockets close). */
  linked(peer: string): boolean;
  /**
   * `peer` echoed one of this replica's heartbeats within deadAfterMs/2 (membership.ts): what a
   * replica may count on from a peer. Exact at the moment of the call.
   */
  inContact(peer: string): boolean;
  /** The replica that holds the pool's queue; null: no scheduler known (no quorum, election pending). */
  schedulerOf(pool: string): string | null;
  onSchedulerChange(listener: (pool: string, scheduler: string | null) => void): void;
  onPeerState(listener: (url: string, state: PeerState) => void): void;
  /** A peer came back as a new process (its in-memory state is gone), possibly without ever turning dead. */
  onPeerRestart(listener: (url: string) => void): void;
  /** One-way message over the persistent link, in order; false when the link is down (nothing queued). */
  send(peer: string, message: ClusterMessage): boolean;
  /** Handler for one message type (registering again replaces it); `from` is the sender's advertise URL. A handler that throws is logged and counted, never crashes. */
  on(type: string, handler: (from: string, message: ClusterMessage) => void): void;
  start(pools: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

/** Pino-compatible (fastify's `app.log.child(...)` fits). */
export interface ClusterLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
  debug(details: object, message: string): void;
}

export interface ClusterDeps {
  readonly logger?: ClusterLogger;
  readonly metrics?: ClusterMetrics;
  /** Monotonic clock (ms); every membership decision reads it. */
  readonly now?: () => number;
  readonly random?: () => number;
  /** Kubernetes credentials for `cluster.kubernetes` (default: as discovery loads them). */
  readonly kubeConfig?: KubeConfig;
  /** Replaces the configured membership source (tests). */
  readonly peerSource?: PeerSource;
}

/** The cluster of `config` (not started; async because Kubernetes membership loads its client on demand). */
export function createCluster(config: ClusterConfig, deps: ClusterDeps = {}): Promise<Cluster> {
  return ClusterNode.create(config, deps);
}

export type { ClusterConfig };
