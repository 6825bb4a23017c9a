/**
 * Assembles the gateway from a validated config: pools with their discovery, stickiness, health and
 * metrics; the public proxy listener (Rasa's state-changing routes refused), the optional internal
 * one (everything, plus model fan-out) and the admin one. `create` never listens, so tests can inject
 * or listen on ephemeral ports; `start` listens and starts discovery; `shutdown` drains.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { adminPlugin } from './admin/admin-plugin.js';
import { Affinity } from './affinity/affinity.js';
import { createCluster, type Cluster } from './cluster/cluster.js';
import type { GatewayConfig, PoolConfig } from './config.js';
import { defaultDiscoveryFactory, type DiscoveryFactory } from './discovery/index.js';
import { codeForStatus, endWithError, GatewayError, rawErrorResponse, sendError } from './errors.js';
import { ActiveHealthChecker } from './health/active-health.js';
import { ModelWatcher } from './cache/model-watcher.js';
import { ParseCache } from './cache/parse-cache.js';
import { PoolCapacity } from './capacity/pool-capacity.js';
import { OutlierDetector } from './health/outlier-detector.js';
import { SlowStart } from './health/slow-start.js';
import { AdaptiveLimits } from './admission/adaptive-slots.js';
import { Admission } from './admission/admission.js';
import { GatewayMetrics, type PoolMetrics } from './metrics/metrics.js';
import { Pool } from './pool/pool.js';
import { attachClusterScheduling, ClusterScheduler } from './scheduling/cluster-scheduler.js';
import { LocalScheduler } from './scheduling/local-scheduler.js';
import { DeletionCostWriter } from './scale-in/deletion-cost.js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { PoolRuntime } from './proxy/pool-runtime.js';
import { modelFanoutRoutes } from './proxy/model-fanout.js';
import { fromOptions, proxyPlugin } from './proxy/proxy-plugin.js';
import { kContext, RequestContext } from './proxy/request-context.js';
import { requestIdOf } from './proxy/request-id.js';
import { originForm } from './proxy/request-checks.js';
import { RetryBudget } from './proxy/retry-budget.js';
import { RouteTable } from './routing/route-table.js';

/**
 * Pending connections the kernel queues for the public listener (Node's default is 511): a burst of
 * chat widgets opening socket.io sessions (a handshake, a long poll, a POST and a websocket each)
 * overflowed it, and dropped SYNs became handshake timeouts and resets (issue 16). Capped by somaxconn.
 */
const LISTEN_BACKLOG = 4096;

export interface GatewayDeps {
  readonly discoveryFactory?: DiscoveryFactory;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Default process metrics (off in tests that build many gateways in one process). */
  readonly defaultMetrics?: boolean;
  /** Kubernetes credentials of the pod-deletion-cost writer (default: as discovery loads them). */
  readonly kubeConfig?: KubeConfig;
  /** This replica in the deletion-cost Lease (default: POD_NAME, else the hostname). */
  readonly identity?: string;
}

export interface GatewayUrls {
  publicUrl: string;
  adminUrl: string;
  internalUrl?: string;
}

export class Gateway {
  readonly pools = new Map<string, PoolRuntime>();
  /** Each pool's scheduling across replicas, when the cluster is on. */
  private readonly clusterSchedulers = new Map<string, ClusterScheduler>();
  readonly metrics: GatewayMetrics;
  readonly internal: FastifyInstance | undefined;
  /** The other replicas (config `cluster`); undefined: this replica works alone. */
  readonly cluster: Cluster | undefined;
  private readonly stoppers: (() => void | Promise<void>)[] = [];
  private readonly starters: (() => void)[] = [];
  private draining = false;

  private constructor(
    readonly config: GatewayConfig,
    readonly app: FastifyInstance,
    readonly admin: FastifyInstance,
    internal: FastifyInstance | undefined,
    metrics: GatewayMetrics,
    cluster: Cluster | undefined,
  ) {
    this.internal = internal;
    this.metrics = metrics;
    this.cluster = cluster;
  }

  static async create(config: GatewayConfig, deps: GatewayDeps = {}): Promise<Gateway> {
    const metrics = new GatewayMetrics({ defaultMetrics: deps.defaultMetrics ?? true });
    const app = proxyServer(config, metrics);
    const internal = config.internal ? proxyServer(config, metrics) : undefined;
    const admin = Fastify({ logger: false });
    const cluster = config.cluster
      ? await createCluster(config.cluster, {
          logger: app.log.child({ component: 'cluster' }),
          metrics: metrics.cluster,
          ...(deps.now ? { now: deps.now } : {}),
          ...(deps.random ? { random: deps.random } : {}),
          ...(deps.kubeConfig ? { kubeConfig: deps.kubeConfig } : {}),
        })
      : undefined;
    if (cluster) metrics.cluster.attach(cluster, Object.keys(config.pools));
    const gateway = new Gateway(config, app, admin, internal, metrics, cluster);
    const factory = deps.discoveryFactory ?? defaultDiscoveryFactory;
    for (const poolConfig of Object.values(config.pools)) {
      const discovery = await factory(poolConfig, app.log.child({ pool: poolConfig.name }));
      gateway.pools.set(poolConfig.name, gateway.buildPool(poolConfig, discovery, deps));
    }
    const routes = new RouteTable(config.routes);
    const accepting = () => !gateway.draining;
    await app.register(proxyPlugin, { routes, pools: gateway.pools, metrics, accepting, protectRasaRoutes: true, publicRoutes: config.publicRoutes });
    if (internal) {
      modelFanoutRoutes(internal, { routes, pools: gateway.pools });
      await internal.register(proxyPlugin, { routes, pools: gateway.pools, metrics, accepting, protectRasaRoutes: false, publicRoutes: [] });
    }
    await admin.register(adminPlugin, { pools: gateway.pools, metrics, notReadyReasons: () => gateway.notReadyReasons(), cluster });
    return gateway;
  }

  private buildPool(poolConfig: PoolConfig, discovery: PoolRuntime['discovery'], deps: GatewayDeps): PoolRuntime {
    const pool = new Pool({
      name: poolConfig.name,
      slotsPerEndpoint: poolConfig.slotsPerEndpoint,
      adaptive: poolConfig.adaptiveSlots !== undefined,
      ...(deps.now ? { now: deps.now } : {}),
    });
    const admission = new Admission(pool, {
      balancer: poolConfig.balancer,
      dispatch: poolConfig.dispatch,
      queue: poolConfig.queue,
      ...(deps.random ? { random: deps.random } : {}),
    });
    let poolMetrics: PoolMetrics | undefined;
    const affinity =
      poolConfig.affinity === 'rasa' ? new Affinity(pool, { ...poolConfig.sessions, onMove: (reason) => poolMetrics?.moved(reason) }) : undefined;
    const local = new LocalScheduler(admission, affinity, () => poolMetrics?.conversationWait());
    const scheduler = this.cluster ? new ClusterScheduler(poolConfig.name, this.cluster, local, admission, affinity, {
          prefetchGrants: this.config.cluster?.prefetchGrants ?? 0,
          settleMs: this.config.cluster?.takeoverWaitMs ?? (this.config.cluster?.deadAfterMs ?? 2000) / 2,
        }) : local;
    if (scheduler instanceof ClusterScheduler) this.clusterSchedulers.set(poolConfig.name, scheduler);
    let cache: ParseCache | undefined;
    if (poolConfig.cache) {
      const watcher = new ModelWatcher(pool, poolConfig.rasaAuth, poolConfig.cache.modelPollMs);
      pool.listen({ stateChanged: () => watcher.recompute() });
      cache = new ParseCache(poolConfig.cache, pool, scheduler, watcher, poolConfig.rasaAuth, poolConfig.upstreamTimeoutMs);
      this.starters.push(() => watcher.start());
      this.stoppers.push(() => watcher.stop());
    }
    poolMetrics = this.metrics.addPool(admission, affinity, cache);
    const capacity = new PoolCapacity(admission, poolConfig.capacity, { classOf: (t) => (t instanceof RequestContext ? t.rasa.kind : 'other') });
    this.metrics.addCapacity(pool.name, capacity);
    const counted = poolMetrics;
    const outliers = new OutlierDetector(pool, poolConfig.ejection, () => counted.ejected('passive'));
    admission.listen({ requestEnded: (backend, outcome) => outliers.observe(backend, outcome) });
    const slowStart = new SlowStart(pool, poolConfig.slowStartMs);
    // Learned per-pod slots (`auto`), or only learned service times for completion-aware static pools.
    const limits =
      poolConfig.adaptiveSlots || poolConfig.dispatch === 'earliest-completion'
        ? new AdaptiveLimits(admission, { minSlots: 1, maxSlots: 16, ...poolConfig.adaptiveSlots, adjust: poolConfig.adaptiveSlots !== undefined })
        : undefined;
    this.stoppers.push(() => outliers.close(), () => slowStart.stop());
    if (affinity) this.stoppers.push(() => affinity.close());
    if (poolConfig.deletionCost.enabled && poolConfig.kubernetes) {
      const writer = new DeletionCostWriter({
        pool,
        namespace: poolConfig.kubernetes.namespace,
        config: poolConfig.deletionCost,
        logger: this.app.log.child({ pool: poolConfig.name }),
        ...(deps.kubeConfig ? { kubeConfig: deps.kubeConfig } : {}),
        ...(deps.identity ? { identity: deps.identity } : {}),
      });
      this.starters.push(() => writer.start());
      this.stoppers.push(() => writer.stop()); // releases the Lease, so another replica takes over at once
    }
    if (poolConfig.healthCheck) {
      const checker = new ActiveHealthChecker(pool, poolConfig.healthCheck, () => counted.ejected('health'));
      this.starters.push(() => checker.start());
      this.stoppers.push(() => checker.stop());
    }
    return {
      pool,
      admission,
      scheduler,
      limits,
      config: poolConfig,
      discovery,
      metrics: poolMetrics,
      affinity,
      cache,
      capacity,
      retryBudget: new RetryBudget(poolConfig.retry.budgetPercent, poolConfig.retry.minPerSecond, pool.now),
      fromOptions: fromOptions(poolConfig.upstreamTimeoutMs),
    };
  }

  /**
   * Why this replica should not get traffic: it is shutting down, or a pool's discovery has not
   * synced yet. Not whether a pool has pods: a pool scaled to zero, or whose pods are all down, is
   * answered by the gateway (a clear 503, or a wait for the first pod with `queue.noPods: wait`), which
   * is better than every replica leaving its Service and clients getting connection refused.
   */
  notReadyReasons(): string[] {
    const reasons: string[] = [];
    if (this.draining) reasons.push('shutting down');
    for (const { pool } of this.pools.values()) {
      if (!pool.synced) reasons.push(`pool ${pool.name}: discovery has not delivered its first endpoint list`);
    }
    return reasons;
  }

  get ready(): boolean {
    return this.notReadyReasons().length === 0;
  }

  /** Starts discovery (readiness follows its first snapshot), health checks and the listeners. */
  async start(): Promise<GatewayUrls> {
    for (const runtime of this.pools.values()) {
      runtime.discovery
        .start((endpoints) => runtime.pool.update(endpoints))
        .catch((err: unknown) => this.app.log.error({ err, pool: runtime.pool.name }, 'discovery failed to start'));
    }
    for (const start of this.starters) start();
    if (this.cluster && this.config.cluster) {
      this.stoppers.push(attachClusterScheduling(this.cluster, this.clusterSchedulers, this.config.cluster.heartbeatMs));
      await this.cluster.start([...this.pools.keys()]);
    }
    const adminUrl = await this.admin.listen({ host: this.config.admin.host, port: this.config.admin.port });
    const internalUrl = this.internal && this.config.internal ? await this.internal.listen({ host: this.config.internal.host, port: this.config.internal.port, backlog: LISTEN_BACKLOG }) : undefined;
    const publicUrl = await this.app.listen({ host: this.config.listen.host, port: this.config.listen.port, backlog: LISTEN_BACKLOG });
    return { publicUrl, adminUrl, ...(internalUrl ? { internalUrl } : {}) };
  }

  /**
   * Graceful shutdown: readiness fails at once, the listeners stop accepting, queued and in-flight
   * requests finish until `drainTimeoutMs`, then the remaining connections are cut.
   */
  async shutdown(drainTimeoutMs = this.config.shutdown.drainTimeoutMs): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    for (const scheduler of this.clusterSchedulers.values()) scheduler.leave(); // lent slots back to the queue now
    const proxies = [this.app, ...(this.internal ? [this.internal] : [])];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const p of proxies) p.server.closeAllConnections();
        resolve();
      }, drainTimeoutMs);
    });
    await Promise.race([Promise.all(proxies.map((p) => p.close())), deadline]);
    clearTimeout(timer);
    for (const runtime of this.pools.values()) runtime.discovery.stop();
    await this.cluster?.stop(); // after draining: requests holding remote grants finished first
    await Promise.all(this.stoppers.map((stop) => stop()));
    await this.admin.close();
  }
}

/**
 * A proxy listener with the gateway's client limits and its answers for everything the framework or
 * Node's HTTP parser refuses: always the catalog's JSON with the catalog's status (errors.ts).
 */
function proxyServer(config: GatewayConfig, metrics: GatewayMetrics): FastifyInstance {
  const { limits } = config;
  const app = Fastify({
    logger: config.log.level === 'silent' ? false : { level: config.log.level },
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    rewriteUrl: (req: IncomingMessage) => originForm(req.url ?? '/'),
    genReqId: (req: IncomingMessage) => requestIdOf(req.headers['x-request-id']),
    // Draining answers SHUTTING_DOWN from the proxy itself (fastify's own 503 is not in our catalog).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    requestTimeout: limits.requestTimeoutMs,
    bodyLimit: maxBodyLimit(config),
    // Node enforces header and request timeouts from a periodic sweep (30 s by default): sweep often
    // enough that a slow client is cut off near its limit, with a 408.
    // requireHostHeader: off so that a missing Host is answered from the catalog (request-checks.ts), not with Node's empty 400.
    http: { maxHeaderSize: limits.maxHeaderBytes, connectionsCheckingInterval: Math.max(50, Math.min(1000, limits.headersTimeoutMs / 2)), requireHostHeader: false },
    clientErrorHandler: onClientError,
    frameworkErrors: (_error: Error, _request: FastifyRequest, reply: FastifyReply) => {
      sendError(reply, new GatewayError('BAD_REQUEST', 'the request target is not a valid URL path'));
    },
  } as never) as unknown as FastifyInstance;
  app.server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  app.server.maxHeadersCount = limits.maxHeadersCount;
  // Expect: 100-continue: a body over every limit is refused before the client sends it; otherwise
  // the 100 goes out and the request runs as any other (the proxy never forwards `expect`).
  const bodyLimit = maxBodyLimit(config);
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length']) > bodyLimit) {
      endWithError(res, new GatewayError('BODY_TOO_LARGE', `the request body exceeds ${bodyLimit} bytes`));
      return;
    }
    res.writeContinue();
    app.server.emit('request', req, res);
  });
  // Expect values other than 100-continue.
  app.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    endWithError(res, new GatewayError('EXPECTATION_FAILED'));
  });
  // Methods the proxy route does not register (PROPFIND, LOCK, ...): no Rasa route takes them.
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, new GatewayError('METHOD_NOT_ALLOWED', `${request.method} is not a method any Rasa route takes`));
  });
  app.setErrorHandler((error, request, reply) => {
    const status = (error as Error & { statusCode?: number }).statusCode ?? 500;
    const code = codeForStatus(status);
    if (code === 'INTERNAL') {
      metrics.internalError(request[kContext]?.runtime.pool.name ?? 'none', 'framework');
      app.log.error({ err: error, reqId: request.id, stage: 'framework' }, 'internal error on the request path; this request ends, the gateway keeps serving');
    }
    const message = code === 'INTERNAL' ? undefined : (error as Error).message;
    sendError(reply, new GatewayError(code, message));
  });
  return app;
}

function maxBodyLimit(config: GatewayConfig): number {
  return Math.max(...Object.values(config.pools).map((p) => p.bodyLimitBytes));
}

/** Node's HTTP parser refused the bytes (bad framing, header overflow, a timeout): answer from the catalog and close. */
function onClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const inResponse = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !inResponse) {
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
    socket.write(rawErrorResponse(new GatewayError(code)));
  }
  socket.destroy();
}

export type { FastifyBaseLogger };
