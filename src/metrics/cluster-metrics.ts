/**
 * The cluster's metrics (src/cluster/), defined once beside the others and registered on the
 * gateway's registry. Without a cluster the counters stay empty and the gauges have no series.
 * Gauges are computed at scrape time from the attached cluster; the message counter keeps one
 * cached child per type and direction, so counting a message is a map lookup and an add.
 */
import client from 'prom-client';

export type MessageDirection = 'in' | 'out';

/** What the gauges read (the Cluster seam satisfies it). */
export interface ClusterGaugeSource {
  readonly self: string;
  peers(): readonly { readonly state: string }[];
  schedulerOf(pool: string): string | null;
}

const peerStates = ['alive', 'suspect', 'dead'] as const;

export class ClusterMetrics {
  private source: { cluster: ClusterGaugeSource; pools: readonly string[] } | undefined;
  private readonly messages: client.Counter;
  private readonly linkErrors: client.Counter;
  private readonly handlerErrors: client.Counter;
  private readonly children = { in: new Map<string, client.Counter.Internal>(), out: new Map<string, client.Counter.Internal>() };

  constructor(registry: client.Registry) {
    const registers = [registry];
    this.messages = new client.Counter({ name: 'gateway_cluster_messages_total', help: 'Messages over the cluster links, by type and direction (in, out); unhandled incoming types count as "unknown".', labelNames: ['type', 'direction'], registers });
    this.linkErrors = new client.Counter({ name: 'gateway_cluster_link_errors_total', help: 'Cluster links dropped for a fault: malformed frame, failed handshake, a peer that stopped reading, a socket error.', labelNames: ['reason'], registers });
    this.handlerErrors = new client.Counter({ name: 'gateway_cluster_handler_errors_total', help: 'Cluster messages whose handler threw (logged; the link and the process carry on), by type.', labelNames: ['type'], registers });
    const metrics = this;
    new client.Gauge({
      name: 'gateway_cluster_peers',
      help: 'Replicas of the cluster (this one included) by state as this replica sees them: alive, suspect, dead.',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const cluster = metrics.source?.cluster;
        if (!cluster) return;
        const counts = new Map<string, number>(peerStates.map((s) => [s, 0]));
        for (const p of cluster.peers()) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new client.Gauge({
      name: 'gateway_cluster_scheduler',
      help: "1 when this replica holds the pool's queue (its scheduler), else 0.",
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        const source = metrics.source;
        if (!source) return;
        for (const pool of source.pools) this.set({ pool }, source.cluster.schedulerOf(pool) === source.cluster.self ? 1 : 0);
      },
    });
  }

  attach(cluster: ClusterGaugeSource, pools: readonly string[]): void {
    this.source = { cluster, pools };
  }

  message(type: string, direction: MessageDirection): void {
    const cache = this.children[direction];
    let child = cache.get(type);
    if (!child) {
      child = this.messages.labels(type, direction);
      cache.set(type, child);
    }
    child.inc();
  }

  linkError(reason: string): void {
    this.linkErrors.labels(reason).inc();
  }

  handlerError(type: string): void {
    this.handlerErrors.labels(type).inc();
  }
}
