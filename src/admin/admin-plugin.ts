/**
 * The admin listener: liveness, readiness, Prometheus metrics and a JSON view of every pool. It never
 * shares a port with public traffic, so it can be exposed to the cluster (Prometheus, kubelet probes)
 * without exposing it to the chatbot's users, and nothing on it changes state.
 */
import type { FastifyInstance } from 'fastify';
import type { AdaptiveLimits } from '../admission/adaptive-slots.js';
import type { Admission } from '../admission/admission.js';
import type { Cluster } from '../cluster/cluster.js';
import { capacityReport, type CapacityReport } from '../capacity/report.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { Backend } from '../pool/backend.js';
import type { PoolRuntime } from '../proxy/pool-runtime.js';
import { ClusterScheduler } from '../scheduling/cluster-scheduler.js';
import { statusRoutes, type StatusOptions } from './status/status-routes.js';

export interface AdminOptions {
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  readonly metrics: GatewayMetrics;
  /** Reasons the gateway is not ready; empty when ready. */
  readonly notReadyReasons: () => string[];
  /** Tuning for the live status page (GET /, /status.json, /status/events). */
  readonly status?: Pick<StatusOptions, 'sampler' | 'maxStreams'>;
  /** The other replicas; undefined when this replica works alone. */
  readonly cluster?: Cluster | undefined;
}

/**
 * GET /debug/cluster. A replica without `cluster` is no member of anything: `self` null, no peers,
 * quorum true (alone it is the whole set) and no scheduler for any pool (it queues locally).
 */
export function describeCluster(cluster: Cluster | undefined, pools: ReadonlyMap<string, PoolRuntime>) {
  if (!cluster) return { self: null, quorum: true, peers: [], pools: Object.fromEntries([...pools.keys()].map((pool) => [pool, { scheduler: null }])) };
  return {
    self: cluster.self,
    quorum: cluster.hasQuorum(),
    peers: cluster.peers().map(({ url, state }) => ({ url, state })),
    pools: Object.fromEntries(
      [...pools].map(([pool, runtime]) => [
        pool,
        { scheduler: cluster.schedulerOf(pool), ...(runtime.scheduler instanceof ClusterScheduler ? { vote: runtime.scheduler.votesView, grantsInAdvance: runtime.scheduler.grantsInAdvance } : {}) },
      ]),
    ),
  };
}

export function describePools(pools: ReadonlyMap<string, PoolRuntime>) {
  return {
    pools: [...pools.values()].map(({ pool, admission, limits, config, discovery }) => ({
      name: pool.name,
      balancer: admission.balancerName,
      discovery: discovery.description,
      synced: pool.synced,
      slotsPerEndpoint: config.adaptiveSlots ? 'auto' : Number.isFinite(config.slotsPerEndpoint) ? config.slotsPerEndpoint : 'unlimited',
      ...(config.adaptiveSlots ? { minSlots: config.adaptiveSlots.minSlots, maxSlots: config.adaptiveSlots.maxSlots } : {}),
      dispatch: config.dispatch,
      queueLength: admission.queue.length,
      inflight: pool.inflight,
      endpoints: [...pool.backends].map((b) => endpointView(b, admission, limits)),
    })),
  };
}

function endpointView(b: Backend, admission: Admission, limits: AdaptiveLimits | undefined) {
  const proven = limits?.provenSlots(b);
  const serviceMs = limits?.serviceMs(b) ?? 0;
  return {
    url: b.origin,
    pod: b.pod,
    zone: b.zone ?? null,
    state: b.state,
    slowStarting: b.slowStartUntilMs > 0,
    ejectedBy: b.ejectedBy ?? null,
    inflight: b.inflight,
    slots: Number.isFinite(b.limit) ? b.limit : 'unlimited',
    ...(proven !== undefined && Number.isFinite(proven) ? { provenSlots: proven } : {}),
    serviceMs: serviceMs > 0 ? Math.round(serviceMs * 10) / 10 : null,
    waiting: admission.queue.waitingFor(b),
    sessions: b.sessions,
    sockets: b.sockets,
    latencyEwmaMs: Math.round(b.latency.valueMs * 10) / 10,
    requests: b.requests,
    failures: b.failures,
  };
}

/** Per pool: the measured rate and service time, slots, and current against desired pods (src/capacity/). */
export function describeCapacity(pools: ReadonlyMap<string, PoolRuntime>): CapacityReport {
  return { pools: [...pools.values()].flatMap(({ capacity }) => (capacity ? [capacityReport(capacity.snapshot())] : [])) };
}

export async function adminPlugin(app: FastifyInstance, options: AdminOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const reasons = options.notReadyReasons();
    if (reasons.length > 0) return reply.code(503).send({ status: 'not ready', reasons });
    return { status: 'ready' };
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.header('content-type', options.metrics.registry.contentType).send(body);
  });

  app.get('/debug/pools', async () => describePools(options.pools));

  app.get('/debug/cluster', async () => describeCluster(options.cluster, options.pools));
  app.get('/debug/capacity', async () => describeCapacity(options.pools));

  await app.register(statusRoutes, { ...options.status, pools: options.pools, metrics: options.metrics });
}
