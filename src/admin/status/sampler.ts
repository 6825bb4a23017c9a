/**
 * The status page's data: a bounded ring of per-second samples per pool, taken from the pools (queue,
 * in flight, per-pod counters) and the Prometheus registry (counters become rates, histogram deltas
 * become p50/p95), and a JSON snapshot built from them.
 *
 * Cost when nobody watches: none. The sampler starts on the first request to a status route, runs on
 * one unref'd interval timer, and stops (dropping its history) once no route was requested for
 * `idleMs` and no event stream is open. It never touches the request hot path: it only reads counters
 * the proxy keeps anyway, and only on its own timer.
 *
 * Metrics read by name, so absent ones (retries, ejections in older builds) are simply null.
 */
import type { Registry } from 'prom-client';
import type { PoolRuntime } from '../../proxy/pool-runtime.js';
import { capacityReport, type PoolCapacityReport } from '../../capacity/report.js';

export const metricNames = {
  requests: 'gateway_requests_total',
  rejected: 'gateway_rejected_requests_total',
  retries: 'gateway_retries_total',
  ejections: 'gateway_ejections_total',
  queueWait: 'gateway_queue_wait_seconds',
  duration: 'gateway_request_duration_seconds',
} as const;

export interface StatusSamplerOptions {
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  readonly registry: Registry;
  /** Sampling period (1 s). */
  readonly intervalMs?: number;
  /** How much history the ring keeps (10 min). */
  readonly historySeconds?: number;
  /** Trailing window for rates and percentiles (10 s). */
  readonly windowSeconds?: number;
  /** Stop sampling this long after the last status request (5 min). */
  readonly idleMs?: number;
  /** Wall clock, epoch ms. */
  readonly now?: () => number;
}

/** Cumulative histogram: upper bounds (seconds, last is +Inf) and cumulative counts. */
interface Hist {
  readonly les: readonly number[];
  readonly counts: readonly number[];
}

interface Counted {
  readonly total: number;
  readonly by: ReadonlyMap<string, number>;
}

interface PoolSample {
  readonly seq: number;
  readonly t: number;
  readonly queueLength: number;
  readonly requests: number;
  readonly rejected: Counted;
  readonly retries: number | null;
  readonly ejections: number | null;
  readonly wait: Hist | null;
  readonly duration: Hist | null;
  /** Requests served per pod (backend key). */
  readonly pods: ReadonlyMap<string, number>;
  /** Derived at sampling time, for the sparklines. */
  readonly requestRate: number | null;
  readonly p95Ms: number | null;
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
}

export interface EndpointStatus {
  readonly key: string;
  readonly pod: string;
  readonly url: string;
  readonly zone: string | null;
  readonly state: string;
  readonly inflight: number;
  readonly slots: number | 'unlimited';
  /** Sticky requests waiting for one of this pod's slots. */
  readonly waiting: number;
  readonly sessions: number;
  readonly latencyEwmaMs: number;
  /** False while the EWMA is still its seed (no answer measured yet). */
  readonly latencyMeasured: boolean;
  readonly requests: number;
  readonly failures: number;
  /** Requests per second over the window. */
  readonly requestRate: number | null;
  /** This pod's part of the requests the pool's pods served (0..1), since the pod joined. */
  readonly share: number | null;
  /** The same over the window only. */
  readonly recentShare: number | null;
}

export interface PoolHistory {
  readonly stepMs: number;
  /** Sequence number of the first point; points follow one per step. */
  readonly fromSeq: number;
  /** True: the whole ring (replace what you have); false: only points after the `since` asked for. */
  readonly full: boolean;
  readonly queueLength: number[];
  readonly requestRate: (number | null)[];
  readonly p95Ms: (number | null)[];
}

export interface PoolStatus {
  readonly name: string;
  readonly balancer: string;
  readonly discovery: string;
  readonly synced: boolean;
  readonly slotsPerEndpoint: number | 'unlimited' | 'auto';
  readonly queueLength: number;
  readonly queueLimit: number;
  readonly inflight: number;
  /** Slots of the pods taking new work. */
  readonly slots: number | 'unlimited';
  readonly requestRate: number | null;
  readonly rejectRate: number | null;
  readonly rejectRateByReason: Record<string, number>;
  /** Null when the gateway has no such metric. */
  readonly retryRate: number | null;
  readonly ejectionRate: number | null;
  readonly totals: { requests: number; rejected: number; retries: number | null; ejections: number | null };
  readonly queueWaitMs: Percentiles | null;
  readonly durationMs: Percentiles | null;
  readonly endpoints: EndpointStatus[];
  readonly history: PoolHistory;
  /** Desired against current pods, with the rate and service time they come from (src/capacity/). */
  readonly capacity: PoolCapacityReport | null;
}

export interface StatusSnapshot {
  readonly version: 1;
  readonly time: number;
  readonly seq: number;
  readonly intervalMs: number;
  readonly windowSeconds: number;
  readonly historySeconds: number;
  readonly pools: PoolStatus[];
}

type Subscriber = () => void;

export class StatusSampler {
  readonly intervalMs: number;
  readonly historySeconds: number;
  readonly windowSeconds: number;
  readonly idleMs: number;
  private readonly now: () => number;
  private readonly rings = new Map<string, PoolSample[]>();
  private readonly subscribers = new Set<Subscriber>();
  private timer: NodeJS.Timeout | undefined;
  private lastAccess = 0;
  private seq = 0;
  private ticking: Promise<void> | undefined;
  /** Resolves once the first sample after a start was taken. */
  private firstSample: Promise<void> | undefined;

  constructor(private readonly options: StatusSamplerOptions) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.historySeconds = options.historySeconds ?? 600;
    this.windowSeconds = options.windowSeconds ?? 10;
    this.idleMs = options.idleMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  get watchers(): number {
    return this.subscribers.size;
  }

  /** Marks the status as watched: starts sampling if it was idle. Resolves once a sample exists. */
  touch(): Promise<void> {
    this.lastAccess = this.now();
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.intervalMs);
      this.timer.unref();
      this.firstSample = this.tick();
    }
    return this.firstSample ?? Promise.resolve();
  }

  /** Calls `fn` after every sample while subscribed; an open subscription keeps the sampler running. */
  subscribe(fn: Subscriber): () => void {
    this.subscribers.add(fn);
    void this.touch().then(() => {
      if (this.subscribers.has(fn)) fn();
    });
    return () => {
      this.subscribers.delete(fn);
      this.lastAccess = this.now();
    };
  }

  /** Stops sampling and forgets the history (it would have a gap anyway). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.firstSample = undefined;
    this.rings.clear();
  }

  /** Takes one sample (the timer calls this; tests may too). Stops instead when idle. */
  async tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.sample().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async sample(): Promise<void> {
    const t = this.now();
    if (this.timer && this.subscribers.size === 0 && t - this.lastAccess > this.idleMs) {
      this.stop();
      return;
    }
    try {
      const registry = this.options.registry;
      const [requests, rejected, retries, ejections, wait, duration] = await Promise.all([
        readCounter(registry, metricNames.requests, 'code'),
        readCounter(registry, metricNames.rejected, 'reason'),
        readCounter(registry, metricNames.retries, 'reason'),
        readCounter(registry, metricNames.ejections, undefined),
        readHistogram(registry, metricNames.queueWait),
        readHistogram(registry, metricNames.duration),
      ]);
      if (!this.timer) return; // stopped while reading
      const seq = ++this.seq;
      const capacity = Math.max(2, Math.ceil((this.historySeconds * 1000) / this.intervalMs));
      for (const { pool, admission } of this.options.pools.values()) {
        let ring = this.rings.get(pool.name);
        if (!ring) this.rings.set(pool.name, (ring = []));
        const pods = new Map<string, number>();
        for (const b of pool.backends) pods.set(b.key, b.requests);
        const partial = {
          seq,
          t,
          queueLength: admission.queue.length,
          requests: requests?.get(pool.name)?.total ?? 0,
          rejected: rejected?.get(pool.name) ?? { total: 0, by: new Map<string, number>() },
          retries: retries ? (retries.get(pool.name)?.total ?? 0) : null,
          ejections: ejections ? (ejections.get(pool.name)?.total ?? 0) : null,
          wait: wait?.get(pool.name) ?? null,
          duration: duration?.get(pool.name) ?? null,
          pods,
        };
        const base = this.baseFor(ring, ring.length);
        const dt = base ? (t - base.t) / 1000 : 0;
        const recent = base ? histDelta(partial.duration, base.duration) : null;
        ring.push({
          ...partial,
          requestRate: base && dt > 0 ? Math.max(0, partial.requests - base.requests) / dt : null,
          p95Ms: recent ? toMs(quantile(0.95, recent)) : null,
        });
        if (ring.length > capacity) ring.splice(0, ring.length - capacity);
      }
    } catch {
      // A failed read skips one sample; the page shows the previous numbers a second longer.
      return;
    }
    for (const fn of this.subscribers) {
      try {
        fn();
      } catch {
        // a broken subscriber must not stop the others
      }
    }
  }

  /** The sample the window's rates for `ring[index]` start from (undefined for the first sample). */
  private baseFor(ring: readonly PoolSample[], index: number): PoolSample | undefined {
    if (index <= 0) return undefined;
    const steps = Math.max(1, Math.round((this.windowSeconds * 1000) / this.intervalMs));
    return ring[Math.max(0, index - steps)];
  }

  /**
   * The current status. History: the whole ring, or only the points after `sinceSeq` when the caller
   * already has the ones before (event streams send each point once).
   */
  snapshot(sinceSeq?: number): StatusSnapshot {
    const pools: PoolStatus[] = [];
    let time = this.now();
    let seq = 0;
    for (const { pool, admission, config, discovery, capacity } of this.options.pools.values()) {
      const ring = this.rings.get(pool.name) ?? [];
      const cur = ring.at(-1);
      const base = this.baseFor(ring, ring.length - 1);
      if (cur) {
        time = cur.t;
        seq = cur.seq;
      }
      const dt = cur && base ? (cur.t - base.t) / 1000 : 0;
      const rate = (a: number | null | undefined, b: number | null | undefined) =>
        dt > 0 && a != null && b != null ? round(Math.max(0, a - b) / dt, 2) : null;
      const byReason: Record<string, number> = {};
      if (cur && base && dt > 0) {
        for (const [reason, v] of cur.rejected.by) {
          const r = Math.max(0, v - (base.rejected.by.get(reason) ?? 0)) / dt;
          if (r > 0) byReason[reason] = round(r, 2);
        }
      }
      let servedTotal = 0;
      let servedRecent = 0;
      let slots = 0;
      for (const b of pool.backends) {
        servedTotal += b.requests;
        servedRecent += Math.max(0, b.requests - (base?.pods.get(b.key) ?? 0));
        if (b.acceptsNewWork) slots += b.limit;
      }
      const endpoints: EndpointStatus[] = [...pool.backends].map((b) => {
        const recent = Math.max(0, b.requests - (base?.pods.get(b.key) ?? 0));
        return {
          key: b.key,
          pod: b.pod,
          url: b.origin,
          zone: b.zone ?? null,
          state: b.state === 'ready' && b.slowStartUntilMs > 0 ? 'slow-starting' : b.state,
          inflight: b.inflight,
          slots: Number.isFinite(b.limit) ? b.limit : 'unlimited',
          waiting: admission.queue.waitingFor(b),
          sessions: b.sessions,
          latencyEwmaMs: round(b.latency.valueMs, 1),
          latencyMeasured: b.latency.hasSamples,
          requests: b.requests,
          failures: b.failures,
          requestRate: dt > 0 ? round(recent / dt, 2) : null,
          share: servedTotal > 0 ? round(b.requests / servedTotal, 4) : null,
          recentShare: servedRecent > 0 ? round(recent / servedRecent, 4) : null,
        };
      });
      const waitDelta = cur && base ? histDelta(cur.wait, base.wait) : null;
      const durationDelta = cur && base ? histDelta(cur.duration, base.duration) : null;
      const points = sinceSeq === undefined ? ring : ring.filter((s) => s.seq > sinceSeq);
      const full = sinceSeq === undefined || ring.length === 0 || ring[0]!.seq > sinceSeq + 1;
      const shown = full ? ring : points;
      pools.push({
        name: pool.name,
        balancer: admission.balancerName,
        discovery: discovery.description,
        synced: pool.synced,
        slotsPerEndpoint: config.adaptiveSlots ? 'auto' : Number.isFinite(config.slotsPerEndpoint) ? config.slotsPerEndpoint : 'unlimited',
        queueLength: admission.queue.length,
        queueLimit: config.queue.maxLength,
        inflight: pool.inflight,
        slots: Number.isFinite(slots) ? slots : 'unlimited',
        requestRate: rate(cur?.requests, base?.requests),
        rejectRate: rate(cur?.rejected.total, base?.rejected.total),
        rejectRateByReason: byReason,
        retryRate: rate(cur?.retries, base?.retries),
        ejectionRate: rate(cur?.ejections, base?.ejections),
        totals: {
          requests: cur?.requests ?? 0,
          rejected: cur?.rejected.total ?? 0,
          retries: cur?.retries ?? null,
          ejections: cur?.ejections ?? null,
        },
        queueWaitMs: percentiles(waitDelta),
        durationMs: percentiles(durationDelta),
        endpoints,
        capacity: capacity ? capacityReport(capacity.snapshot()) : null,
        history: {
          stepMs: this.intervalMs,
          fromSeq: shown[0]?.seq ?? seq + 1,
          full,
          queueLength: shown.map((s) => s.queueLength),
          requestRate: shown.map((s) => (s.requestRate === null ? null : round(s.requestRate, 2))),
          p95Ms: shown.map((s) => (s.p95Ms === null ? null : round(s.p95Ms, 1))),
        },
      });
    }
    return {
      version: 1,
      time,
      seq,
      intervalMs: this.intervalMs,
      windowSeconds: this.windowSeconds,
      historySeconds: this.historySeconds,
      pools,
    };
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function toMs(seconds: number | null): number | null {
  return seconds === null ? null : seconds * 1000;
}

function percentiles(h: Hist | null): Percentiles | null {
  const p50 = h ? quantile(0.5, h) : null;
  const p95 = h ? quantile(0.95, h) : null;
  return p50 === null || p95 === null ? null : { p50: round(p50 * 1000, 1), p95: round(p95 * 1000, 1) };
}

/** Per-bucket difference of two cumulative histograms with the same buckets (counter resets clamp to 0). */
export function histDelta(cur: Hist | null, base: Hist | null): Hist | null {
  if (!cur) return null;
  if (!base || base.les.length !== cur.les.length) return cur;
  return { les: cur.les, counts: cur.counts.map((c, i) => Math.max(0, c - (base.counts[i] ?? 0))) };
}

/**
 * Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank; the first
 * bucket starts at 0; a rank in the +Inf bucket gives the highest finite bound. Null without data.
 */
export function quantile(q: number, h: Hist): number | null {
  const total = h.counts.at(-1) ?? 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i < h.les.length; i++) {
    const count = h.counts[i]!;
    if (count < rank) continue;
    const upper = h.les[i]!;
    if (!Number.isFinite(upper)) return i > 0 ? h.les[i - 1]! : 0;
    const lower = i > 0 ? h.les[i - 1]! : 0;
    const prev = i > 0 ? h.counts[i - 1]! : 0;
    if (upper <= lower || count <= prev) return upper;
    return lower + ((upper - lower) * (rank - prev)) / (count - prev);
  }
  return null;
}

interface MetricValue {
  readonly value: number;
  readonly labels: Partial<Record<string, string | number>>;
  readonly metricName?: string;
}

async function values(registry: Registry, name: string): Promise<readonly MetricValue[] | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const data = await metric.get();
  return data.values as readonly MetricValue[];
}

/** Counter totals per pool, and per `label` value when given. Undefined when the metric doesn't exist. */
async function readCounter(registry: Registry, name: string, label: string | undefined): Promise<Map<string, Counted> | undefined> {
  const vals = await values(registry, name);
  if (!vals) return undefined;
  const out = new Map<string, { total: number; by: Map<string, number> }>();
  for (const v of vals) {
    const pool = String(v.labels.pool ?? '');
    let entry = out.get(pool);
    if (!entry) out.set(pool, (entry = { total: 0, by: new Map() }));
    entry.total += v.value;
    if (label !== undefined) {
      const key = String(v.labels[label] ?? '');
      entry.by.set(key, (entry.by.get(key) ?? 0) + v.value);
    }
  }
  return out;
}

/** Cumulative bucket counts per pool. Undefined when the metric doesn't exist. */
async function readHistogram(registry: Registry, name: string): Promise<Map<string, Hist> | undefined> {
  const vals = await values(registry, name);
  if (!vals) return undefined;
  const byPool = new Map<string, [number, number][]>();
  for (const v of vals) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const pool = String(v.labels.pool ?? '');
    const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
    let list = byPool.get(pool);
    if (!list) byPool.set(pool, (list = []));
    list.push([le, v.value]);
  }
  const out = new Map<string, Hist>();
  for (const [pool, list] of byPool) {
    list.sort((a, b) => a[0] - b[0]);
    out.set(pool, { les: list.map((x) => x[0]), counts: list.map((x) => x[1]) });
  }
  return out;
}
