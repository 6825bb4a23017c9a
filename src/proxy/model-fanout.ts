/**
 * `PUT /model` and `DELETE /model` replace or unload the model on the pod that receives them, so on
 * the internal listener the gateway sends them to every pod of the pool and reports each pod's
 * answer. The fan-out runs through p-queue with bounded concurrency: every pod loading a new model at
 * the same instant would take the whole pool's capacity at once.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import PQueue from 'p-queue';
import { GatewayError, sendError } from '../errors.js';
import type { PoolRuntime } from './pool-runtime.js';
import type { RouteTable } from '../routing/route-table.js';

export interface FanoutResult {
  readonly endpoint: string;
  readonly pod: string;
  readonly status: number | null;
  readonly body: unknown;
  readonly error?: string;
}

export function modelFanoutRoutes(app: FastifyInstance, options: { routes: RouteTable; pools: ReadonlyMap<string, PoolRuntime>; concurrency?: number }): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const route = options.routes.match('/model');
    const runtime = route ? options.pools.get(route.pool) : undefined;
    if (!runtime) return sendError(reply, new GatewayError('NO_ROUTE', 'no route matches /model'));
    const targets = [...runtime.pool.backends].filter((b) => b.state !== 'gone');
    if (targets.length === 0) return sendError(reply, new GatewayError('NO_ENDPOINTS'));
    const body = request.body === undefined ? undefined : Buffer.isBuffer(request.body) ? request.body : JSON.stringify(request.body);
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    const headers: Record<string, string> = {};
    for (const name of ['authorization', 'content-type']) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const queue = new PQueue({ concurrency: options.concurrency ?? 4 });
    const results = await Promise.all(
      targets.map((backend) =>
        queue.add(async (): Promise<FanoutResult> => {
          try {
            const res = await fetch(`${backend.origin}/model${query}`, {
              method: request.method,
              headers,
              ...(body !== undefined ? { body } : {}),
              signal: AbortSignal.timeout(runtime.config.upstreamTimeoutMs),
            });
            const text = await res.text();
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              // keep text
            }
            return { endpoint: backend.origin, pod: backend.pod, status: res.status, body: parsed };
          } catch (err) {
            return { endpoint: backend.origin, pod: backend.pod, status: null, body: null, error: (err as Error).message };
          }
        }),
      ),
    );
    const ok = results.every((r) => r !== undefined && r.status !== null && r.status < 300);
    return reply.code(ok ? 200 : 502).send({ pool: runtime.pool.name, ok, results });
  };
  app.register(async (scope) => {
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    scope.put('/model', handler);
    scope.delete('/model', handler);
  });
}
