/**
 * Assembles the gateway from a validated config: pools with their discovery and metrics, the public
 * fastify instance (proxy) and the admin one. `create` never listens, so tests can inject requests or
 * listen on ephemeral ports; `start` listens and starts discovery; `shutdown` drains.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { adminPlugin } from './admin/admin-plugin.js';
import { Affinity } from './affinity/affinity.js';
import type { GatewayConfig } from './config.js';
import { defaultDiscoveryFactory, type DiscoveryFactory } from './discovery/index.js';
import { errorBody, GatewayError } from './errors.js';
import { GatewayMetrics, type PoolMetrics } from './metrics/metrics.js';
import { Pool } from './pool/pool.js';
import type { PoolRuntime } from './pool/runtime.js';
import { proxyPlugin } from './proxy/proxy-plugin.js';
import { RouteTable } from './routing/route-table.js';

export interface GatewayDeps {
  readonly discoveryFactory?: DiscoveryFactory;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Default process metrics (off in tests that build many gateways in one process). */
  readonly defaultMetrics?: boolean;
}

export class Gateway {
  readonly pools = new Map<string, PoolRuntime>();
  readonly metrics: GatewayMetrics;
  private draining = false;

  private constructor(
    readonly config: GatewayConfig,
    readonly app: FastifyInstance,
    readonly admin: FastifyInstance,
    metrics: GatewayMetrics,
  ) {
    this.metrics = metrics;
  }

  static async create(config: GatewayConfig, deps: GatewayDeps = {}): Promise<Gateway> {
    const metrics = new GatewayMetrics({ defaultMetrics: deps.defaultMetrics ?? true });
    const logger = config.log.level === 'silent' ? false : { level: config.log.level };
    const app = Fastify({
      logger,
      logController: new LogController({ disableRequestLogging: true }),
      requestIdHeader: 'x-request-id',
      genReqId: () => randomUUID(),
      trustProxy: true,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
    });
    const admin = Fastify({ logger: false });
    const gateway = new Gateway(config, app, admin, metrics);
    const factory = deps.discoveryFactory ?? defaultDiscoveryFactory;
    for (const poolConfig of Object.values(config.pools)) {
      const pool = new Pool({
        name: poolConfig.name,
        balancer: poolConfig.balancer,
        slotsPerEndpoint: poolConfig.slotsPerEndpoint,
        queue: poolConfig.queue,
        ...(deps.now ? { now: deps.now } : {}),
        ...(deps.random ? { random: deps.random } : {}),
      });
      const discovery = await factory(poolConfig);
      let poolMetrics: PoolMetrics | undefined;
      const affinity =
        poolConfig.affinity === 'rasa'
          ? new Affinity(pool, { ...poolConfig.sessions, onMove: (reason) => poolMetrics?.moved(reason) })
          : undefined;
      poolMetrics = metrics.addPool(pool, affinity);
      gateway.pools.set(pool.name, { pool, config: poolConfig, discovery, metrics: poolMetrics, affinity });
    }
    app.setErrorHandler((error, _request, reply) => {
      const err = error as Error & { statusCode?: number };
      const status = err.statusCode ?? 500;
      const code = status === 413 ? 'BODY_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : status < 500 ? 'BAD_REQUEST' : 'INTERNAL';
      if (status >= 500) app.log.error({ err }, 'unhandled error');
      const message = status < 500 ? err.message : new GatewayError('INTERNAL').message;
      reply.code(status).header('content-type', 'application/json; charset=utf-8').send(errorBody(code, message));
    });
    await app.register(proxyPlugin, {
      routes: new RouteTable(config.routes),
      pools: gateway.pools,
      accepting: () => !gateway.draining,
    });
    await admin.register(adminPlugin, {
      pools: gateway.pools,
      metrics,
      notReadyReasons: () => gateway.notReadyReasons(),
    });
    return gateway;
  }

  notReadyReasons(): string[] {
    const reasons: string[] = [];
    if (this.draining) reasons.push('shutting down');
    for (const { pool } of this.pools.values()) {
      if (!pool.synced) reasons.push(`pool ${pool.name}: discovery has not delivered its first endpoint list`);
      else if (pool.workingCount === 0) reasons.push(`pool ${pool.name}: no ready endpoint`);
    }
    return reasons;
  }

  get ready(): boolean {
    return this.notReadyReasons().length === 0;
  }

  /** Starts discovery (readiness follows its first snapshot) and both listeners. */
  async start(): Promise<{ publicUrl: string; adminUrl: string }> {
    for (const runtime of this.pools.values()) {
      runtime.discovery
        .start((endpoints) => runtime.pool.update(endpoints))
        .catch((err: unknown) => this.app.log.error({ err, pool: runtime.pool.name }, 'discovery failed to start'));
    }
    const adminUrl = await this.admin.listen({ host: this.config.admin.host, port: this.config.admin.port });
    const publicUrl = await this.app.listen({ host: this.config.listen.host, port: this.config.listen.port });
    return { publicUrl, adminUrl };
  }

  /**
   * Graceful shutdown: readiness fails at once, the listener stops accepting, queued and in-flight
   * requests finish until `drainTimeoutMs`, then the remaining connections are cut.
   */
  async shutdown(drainTimeoutMs = this.config.shutdown.drainTimeoutMs): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.app.server.closeAllConnections();
        resolve();
      }, drainTimeoutMs);
    });
    await Promise.race([this.app.close(), deadline]);
    clearTimeout(timer);
    for (const runtime of this.pools.values()) {
      runtime.discovery.stop();
      runtime.affinity?.close();
    }
    await this.admin.close();
  }
}
