/**
 * Every metric the gateway exports, defined once. Names and labels are a contract with dashboards and
 * the HPA adapter rules in deploy/. Gauges that describe state (queue length, in flight, endpoints) are
 * computed at scrape time from the pools, so the hot path does no gauge work and series of pods that
 * left vanish by construction. Counters and histograms on the hot path use cached label children.
 */
import client from 'prom-client';
import type { Pool } from '../pool/pool.js';
import type { Affinity } from '../affinity/affinity.js';
import type { BackendState } from '../pool/backend.js';

const backendStates: readonly BackendState[] = ['ready', 'draining', 'ejected'];

/** Queue waits from a millisecond to a few minutes; request durations alike (Rasa turns take 0.3-30 s). */
const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class PoolMetrics {
  private readonly codes = new Map<number, client.Counter.Internal>();
  private readonly rejections = new Map<string, client.Counter.Internal>();
  readonly duration: client.Histogram.Internal<string>;
  readonly queueWait: client.Histogram.Internal<string>;

  constructor(
    private readonly metrics: GatewayMetrics,
    readonly pool: string,
  ) {
    this.duration = metrics.requestDuration.labels(pool);
    this.queueWait = metrics.queueWait.labels(pool);
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

  rejected(reason: string): void {
    let child = this.rejections.get(reason);
    if (!child) {
      child = this.metrics.rejected.labels(this.pool, reason);
      this.rejections.set(reason, child);
    }
    child.inc();
  }
}

export class GatewayMetrics {
  readonly registry = new client.Registry();
  private readonly pools = new Map<string, Pool>();
  private readonly affinities = new Map<string, Affinity>();
  readonly stickyMoves: client.Counter;
  readonly conversationWaits: client.Counter;
  readonly unkeyed: client.Counter;
  readonly retries: client.Counter;
  readonly cacheRequests: client.Counter;
  private readonly caches = new Map<string, { size: number }>();
  readonly ejections: client.Counter;
  readonly requests: client.Counter;
  readonly rejected: client.Counter;
  readonly requestDuration: client.Histogram;
  readonly queueWait: client.Histogram;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const pools = this.pools;
    this.requests = new client.Counter({
      name: 'gateway_requests_total',
      help: 'Requests answered, by pool and HTTP status (gateway errors included).',
      labelNames: ['pool', 'code'],
      registers,
    });
    this.rejected = new client.Counter({
      name: 'gateway_rejected_requests_total',
      help: 'Requests the gateway answered itself without reaching a pod, by reason (error code).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.requestDuration = new client.Histogram({
      name: 'gateway_request_duration_seconds',
      help: 'Time from arrival at the gateway to the end of the response, queue wait included.',
      labelNames: ['pool'],
      buckets: latencyBuckets,
      registers,
    });
    this.queueWait = new client.Histogram({
      name: 'gateway_queue_wait_seconds',
      help: 'Time requests spent waiting for a slot (zero when one was free).',
      labelNames: ['pool'],
      buckets: [0, ...latencyBuckets],
      registers,
    });
    const affinities = this.affinities;
    this.stickyMoves = new client.Counter({
      name: 'gateway_sticky_moves_total',
      help: 'Conversations moved to another pod because theirs left (removed) or failed (ejected).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.conversationWaits = new client.Counter({
      name: 'gateway_conversation_waits_total',
      help: 'Requests that waited for an earlier request of the same conversation to finish.',
      labelNames: ['pool'],
      registers,
    });
    this.unkeyed = new client.Counter({
      name: 'gateway_affinity_unkeyed_total',
      help: 'Requests on keyed routes proxied without a conversation key (e.g. a webhook body that is not JSON).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.retries = new client.Counter({
      name: 'gateway_retries_total',
      help: 'Attempts sent to another pod after a safe-to-retry failure, by reason.',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.ejections = new client.Counter({
      name: 'gateway_ejections_total',
      help: 'Pods taken out of rotation: passive (consecutive failures) or health (failed probes).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.cacheRequests = new client.Counter({
      name: 'gateway_cache_requests_total',
      help: 'Parse requests by cache result: hit, miss (went upstream), coalesced (shared an in-flight request), bypass.',
      labelNames: ['pool', 'result'],
      registers,
    });
    const caches = this.caches;
    new client.Gauge({
      name: 'gateway_cache_entries',
      help: 'Answers held in the parse cache.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, cache] of caches) this.labels(pool).set(cache.size);
      },
    });
    new client.Gauge({
      name: 'gateway_sticky_sessions',
      help: 'Conversations this replica remembers a pod for.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, affinity] of affinities) this.labels(pool).set(affinity.size);
      },
    });
    new client.Gauge({
      name: 'gateway_queue_length',
      help: 'Requests waiting in the pool queue for a slot.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.values()) this.labels(pool.name).set(pool.queue.length);
      },
    });
    new client.Gauge({
      name: 'gateway_inflight_requests',
      help: 'Requests holding a slot on a pod of the pool.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.values()) this.labels(pool.name).set(pool.inflight);
      },
    });
    new client.Gauge({
      name: 'gateway_endpoint_inflight_requests',
      help: 'Requests in flight per pod.',
      labelNames: ['pool', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.values()) for (const b of pool.backends) this.labels(pool.name, b.key).set(b.inflight);
      },
    });
    new client.Gauge({
      name: 'gateway_endpoint_slots',
      help: 'Slots per pod: requests it may have in flight at once (+Inf when unlimited).',
      labelNames: ['pool', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.values()) for (const b of pool.backends) this.labels(pool.name, b.key).set(b.limit);
      },
    });
    new client.Gauge({
      name: 'gateway_endpoints',
      help: 'Pods in the pool by state.',
      labelNames: ['pool', 'state'],
      registers,
      collect() {
        this.reset();
        for (const pool of pools.values()) {
          const counts = new Map<string, number>(backendStates.map((s) => [s, 0]));
          for (const b of pool.backends) counts.set(b.state, (counts.get(b.state) ?? 0) + 1);
          for (const [state, n] of counts) this.labels(pool.name, state).set(n);
        }
      },
    });
  }

  addPool(pool: Pool, affinity?: Affinity, cache?: { size: number }): PoolMetrics {
    this.pools.set(pool.name, pool);
    if (cache) this.caches.set(pool.name, cache);
    if (affinity) this.affinities.set(pool.name, affinity);
    return new PoolMetrics(this, pool.name);
  }
}
