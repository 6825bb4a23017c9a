/**
 * Every metric the gateway exports, defined once. Names and labels are a contract with dashboards and
 * the HPA adapter rules in deploy/. Gauges that describe state (queue length, in flight, endpoints) are
 * computed at scrape time from the pools, so the hot path does no gauge work and series of pods that
 * left vanish by construction. Counters and histograms on the hot path use cached label children.
 */
import client from 'prom-client';
import type { Pool } from '../pool/pool.js';
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

  addPool(pool: Pool): PoolMetrics {
    this.pools.set(pool.name, pool);
    return new PoolMetrics(this, pool.name);
  }
}
