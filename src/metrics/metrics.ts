/**
 * Every metric the gateway exports, defined once. Names and labels are a contract with dashboards and
 * the HPA adapter rules in deploy/. Gauges that describe state (queue length, in flight, endpoints) are
 * computed at scrape time from the pools, so the hot path does no gauge work and series of pods that
 * left vanish by construction. Counters and histograms on the hot path use cached label children.
 */
import client from 'prom-client';
import type { Admission } from '../admission/admission.js';
import type { Affinity } from '../affinity/affinity.js';
import type { Backend, BackendState } from '../pool/backend.js';
import { ClusterMetrics } from './cluster-metrics.js';
import type { PoolCapacity } from '../capacity/pool-capacity.js';

const backendStates: readonly BackendState[] = ['ready', 'not-ready', 'draining', 'ejected'];

/** Queue waits from a millisecond to a few minutes; request durations alike (Rasa turns take 0.3-30 s). */
const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class PoolMetrics {
  private readonly codes = new Map<number, client.Counter.Internal>();
  private readonly rejections = new Map<string, client.Counter.Internal>();
  private readonly upstreamFailures = new Map<string, client.Counter.Internal>();
  readonly duration: client.Histogram.Internal<string>;
  readonly queueWait: client.Histogram.Internal<string>;

  constructor(
    private readonly metrics: GatewayMetrics,
    readonly pool: string,
  ) {
    this.duration = metrics.requestDuration.labels(pool);
    this.queueWait = metrics.queueWait.labels(pool);
    metrics.queueWait.zero({ pool }); // the adapter serves the queue-wait metric only once its series exist
  }

  request(status: number): void {
    let child = this.codes.get(status);
    if (!child) {
      child = this.metrics.requests.labels(this.pool, String(status));
      this.codes.set(status, child);
    }
    child.inc();
  }

  moved(reason: string): void {
    this.metrics.stickyMoves.labels(this.pool, reason).inc();
  }

  conversationWait(): void {
    this.metrics.conversationWaits.labels(this.pool).inc();
  }

  unkeyed(reason: string): void {
    this.metrics.unkeyed.labels(this.pool, reason).inc();
  }

  cache(result: 'hit' | 'miss' | 'bypass' | 'coalesced'): void {
    this.metrics.cacheRequests.labels(this.pool, result).inc();
  }

  retried(reason: string): void {
    this.metrics.retries.labels(this.pool, reason).inc();
  }

  ejected(reason: string): void {
    this.metrics.ejections.labels(this.pool, reason).inc();
  }

  internalError(stage: string): void {
    this.metrics.internalError(this.pool, stage);
  }

  upstreamFailed(reason: string): void {
    cachedChild(this.upstreamFailures, this.metrics.upstreamFailures, this.pool, reason).inc();
  }

  rejected(reason: string): void {
    cachedChild(this.rejections, this.metrics.rejected, this.pool, reason).inc();
  }
}

/** The (pool, reason) child of a counter, looked up once per reason: the hot path does no label work. */
function cachedChild(cache: Map<string, client.Counter.Internal>, counter: client.Counter, pool: string, reason: string): client.Counter.Internal {
  let child = cache.get(reason);
  if (!child) {
    child = counter.labels(pool, reason);
    cache.set(reason, child);
  }
  return child;
}

type Labelled = Record<string, string | number>;

export class GatewayMetrics {
  readonly registry = new client.Registry();
  private readonly pools = new Map<string, Admission>();
  private readonly affinities = new Map<string, Affinity>();
  private readonly caches = new Map<string, { size: number }>();
  private readonly capacities = new Map<string, Pick<PoolCapacity, 'snapshot'>>();
  readonly requests: client.Counter;
  readonly rejected: client.Counter;
  readonly upstreamFailures: client.Counter;
  readonly requestDuration: client.Histogram;
  readonly queueWait: client.Histogram;
  readonly stickyMoves: client.Counter;
  readonly conversationWaits: client.Counter;
  readonly unkeyed: client.Counter;
  readonly retries: client.Counter;
  readonly ejections: client.Counter;
  readonly cacheRequests: client.Counter;
  readonly internalErrors: client.Counter;
  /** Replica-to-replica traffic and membership (cluster-metrics.ts). */
  readonly cluster: ClusterMetrics;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry });
    const { pools, affinities, caches, capacities } = this;
    const counter = (name: string, help: string, labelNames: string[]) => new client.Counter({ name, help, labelNames, registers: [this.registry] });
    const histogram = (name: string, help: string, buckets: number[]) =>
      new client.Histogram({ name, help, labelNames: ['pool'], buckets, registers: [this.registry] });
    /** A gauge computed at scrape time: `samples` lists every current series (others vanish). */
    const gauge = (name: string, help: string, labelNames: string[], samples: () => Iterable<[Labelled, number]>) =>
      new client.Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [labels, value] of samples()) this.set(labels, value);
        },
      });
    function* perPool(valueOf: (admission: Admission) => number): Iterable<[Labelled, number]> {
      for (const admission of pools.values()) yield [{ pool: admission.pool.name }, valueOf(admission)];
    }
    function* perEndpoint(valueOf: (b: Backend) => number): Iterable<[Labelled, number]> {
      for (const { pool } of pools.values()) for (const b of pool.backends) yield [{ pool: pool.name, endpoint: b.key }, valueOf(b)];
    }
    function* perState(): Iterable<[Labelled, number]> {
      for (const { pool } of pools.values()) {
        const counts = new Map<string, number>(backendStates.map((s) => [s, 0]));
        for (const b of pool.backends) counts.set(b.state, (counts.get(b.state) ?? 0) + 1);
        for (const [state, n] of counts) yield [{ pool: pool.name, state }, n];
      }
    }
    function* desired(): Iterable<[Labelled, number]> {
      for (const [pool, c] of capacities) {
        const pods = c.snapshot().desiredPods;
        if (pods !== null) yield [{ pool }, pods];
      }
    }
    function* sizes(of: Map<string, { size: number }>): Iterable<[Labelled, number]> {
      for (const [pool, x] of of) yield [{ pool }, x.size];
    }

    this.requests = counter('gateway_requests_total', 'Requests answered, by pool and HTTP status (gateway errors included).', ['pool', 'code']);
    this.rejected = counter('gateway_rejected_requests_total', 'Requests the gateway answered itself without reaching a pod, by reason (error code).', ['pool', 'reason']);
    this.upstreamFailures = counter('gateway_upstream_failures_total', 'Requests that reached a pod and were answered with a gateway error (the pod failed, timed out, or the deadline passed while it worked), by error code.', ['pool', 'reason']);
    this.requestDuration = histogram('gateway_request_duration_seconds', 'Time from arrival at the gateway to the end of the response, queue wait included.', latencyBuckets);
    this.queueWait = histogram('gateway_queue_wait_seconds', 'Time requests spent waiting for a slot (zero when one was free).', [0, ...latencyBuckets]);
    this.stickyMoves = counter('gateway_sticky_moves_total', 'Conversations moved to another pod because theirs left (removed) or failed (ejected).', ['pool', 'reason']);
    this.conversationWaits = counter('gateway_conversation_waits_total', 'Requests that waited for an earlier request of the same conversation to finish.', ['pool']);
    this.unkeyed = counter('gateway_affinity_unkeyed_total', 'Requests on keyed routes proxied without a conversation key (e.g. a webhook body that is not JSON).', ['pool', 'reason']);
    this.retries = counter('gateway_retries_total', 'Attempts sent to another pod after a safe-to-retry failure, by reason.', ['pool', 'reason']);
    this.ejections = counter('gateway_ejections_total', 'Pods taken out of rotation: passive (consecutive failures) or health (failed probes).', ['pool', 'reason']);
    this.cacheRequests = counter('gateway_cache_requests_total', 'Parse requests by cache result: hit, miss (went upstream), coalesced (shared an in-flight request), bypass.', ['pool', 'result']);
    this.internalErrors = counter('gateway_internal_errors_total', 'Requests ended by an exception inside the gateway (answered 500 INTERNAL; the process kept serving), by pool and request-path stage.', ['pool', 'stage']);
    this.cluster = new ClusterMetrics(this.registry);
    gauge('gateway_cache_entries', 'Answers held in the parse cache.', ['pool'], () => sizes(caches));
    gauge('gateway_sticky_sessions', 'Conversations this replica remembers a pod for.', ['pool'], () => sizes(affinities));
    gauge('gateway_queue_length', 'Requests waiting in the pool queue for a slot.', ['pool'], () => perPool((a) => a.ownWaiting));
    gauge('gateway_inflight_requests', 'Requests holding a slot on a pod of the pool.', ['pool'], () => perPool((a) => a.ownInflight));
    gauge('gateway_endpoint_inflight_requests', 'Requests in flight per pod.', ['pool', 'endpoint'], () => perEndpoint((b) => b.inflight));
    gauge('gateway_endpoint_slots', 'Slots per pod: requests it may have in flight at once (+Inf when unlimited).', ['pool', 'endpoint'], () => perEndpoint((b) => b.limit));
    gauge('gateway_endpoints', 'Pods in the pool by state: ready, not-ready, draining, ejected.', ['pool', 'state'], perState);
    gauge('gateway_pool_desired_pods', 'Pods the pool needs for its p95 queue wait target at the measured arrival rate and service time, plus draining any excess backlog within the horizon (src/capacity/); at least 1 while requests wait.', ['pool'], desired);
  }

  /** `pool` is "none" where the failure came before the request was matched to a pool. */
  internalError(pool: string, stage: string): void {
    this.internalErrors.labels(pool, stage).inc();
  }

  /** The pool's capacity estimate, read at scrape time for `gateway_pool_desired_pods`. */
  addCapacity(pool: string, capacity: Pick<PoolCapacity, 'snapshot'>): void {
    this.capacities.set(pool, capacity);
  }

  addPool(admission: Admission, affinity?: Affinity, cache?: { size: number }): PoolMetrics {
    const pool = admission.pool;
    this.pools.set(pool.name, admission);
    if (cache) this.caches.set(pool.name, cache);
    if (affinity) this.affinities.set(pool.name, affinity);
    return new PoolMetrics(this, pool.name);
  }
}
