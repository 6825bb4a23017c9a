/**
 * The public listener's one route: every path goes through @fastify/http-proxy (undici underneath,
 * keep-alive per pod, streamed bodies). Our logic sits in its seams: the preHandler matches the route
 * table and waits for a slot (asynchronously, in the pool's central queue), `getUpstream` returns the
 * pod the slot is on, `onResponse`/`onError` record the outcome, and the response's `close` releases
 * the slot. The per-request reply-from options are built once per pool, so the hot path allocates
 * the request context and little else.
 */
import { randomUUID } from 'node:crypto';
import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError, sendError } from '../errors.js';
import type { PoolRuntime } from '../pool/runtime.js';
import { pathOf, type RouteTable } from '../routing/route-table.js';
import { kContext, RequestContext } from './request-context.js';
import { classifyUpstreamError } from './upstream-errors.js';

export interface ProxyOptions {
  readonly routes: RouteTable;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  /** False once draining has begun: new requests get 503 SHUTTING_DOWN. */
  readonly accepting: () => boolean;
}

interface ReplyFromResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  stream: NodeJS.ReadableStream;
}

function contextOf(request: FastifyRequest): RequestContext {
  return request[kContext] as RequestContext;
}

function getUpstream(request: FastifyRequest): string {
  return contextOf(request).backend?.origin ?? '';
}

function onResponse(request: FastifyRequest, reply: FastifyReply, res: ReplyFromResponse): void {
  const ctx = contextOf(request);
  if (ctx.responded(ctx.runtime.pool.now(), res.statusCode)) reply.send(res.stream);
  else (res.stream as NodeJS.ReadableStream & { destroy(): void }).destroy();
}

function onError(reply: FastifyReply, { error }: { error: Error }): void {
  const ctx = contextOf(reply.request);
  const deadlinePassed = ctx.runtime.pool.now() >= ctx.deadlineMs - 1;
  ctx.fail(classifyUpstreamError(error, deadlinePassed));
}

function rewriteRequestHeaders(request: FastifyRequest, headers: Record<string, string | string[] | undefined>) {
  const forwardedFor = headers['x-forwarded-for'];
  const ip = request.ip;
  headers['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${ip}` : ip;
  headers['x-forwarded-proto'] ??= request.protocol;
  headers['x-forwarded-host'] ??= request.headers.host;
  headers['x-request-id'] = request.id;
  return headers;
}

/** reply-from options shared by every request of a pool (and one per deadline-shortened timeout). */
function fromOptions(timeout: number) {
  return { getUpstream, onResponse, onError, rewriteRequestHeaders, timeout };
}

export async function proxyPlugin(app: FastifyInstance, options: ProxyOptions): Promise<void> {
  const staticOptions = new Map<string, ReturnType<typeof fromOptions>>();
  for (const [name, runtime] of options.pools) staticOptions.set(name, fromOptions(runtime.config.upstreamTimeoutMs));

  function preHandler(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const route = options.routes.match(pathOf(request.url));
    if (!route) {
      sendError(reply, new GatewayError('NO_ROUTE', `no route matches ${pathOf(request.url)}`));
      return;
    }
    if (route.methods && !route.methods.has(request.method)) {
      reply.header('allow', [...route.methods].join(', '));
      sendError(reply, new GatewayError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on this route`));
      return;
    }
    const runtime = options.pools.get(route.pool) as PoolRuntime;
    const ctx = new RequestContext(request, reply, runtime, route, runtime.pool.now());
    if (!options.accepting()) {
      ctx.fail(new GatewayError('SHUTTING_DOWN'));
      return;
    }
    reply.header('x-request-id', request.id);
    ctx.continue = done;
    runtime.pool.admit(ctx);
  }

  function handler(request: FastifyRequest, reply: FastifyReply, dest: string): FastifyReply {
    const ctx = contextOf(request);
    const poolTimeout = ctx.runtime.config.upstreamTimeoutMs;
    let opts = staticOptions.get(ctx.runtime.pool.name) as ReturnType<typeof fromOptions>;
    if (ctx.deadlineMs !== Infinity) {
      const remaining = Math.floor(ctx.deadlineMs - ctx.runtime.pool.now());
      if (remaining <= 0) {
        ctx.fail(new GatewayError('DEADLINE_EXCEEDED'));
        return reply;
      }
      if (remaining < poolTimeout) opts = fromOptions(remaining);
    }
    if (ctx.backend) reply.header('x-gateway-endpoint', ctx.backend.pod);
    return reply.from(dest, opts as never);
  }

  await app.register(httpProxy, {
    upstream: '',
    prefix: '/',
    http2: false,
    disableRequestLogging: true,
    preHandler,
    handler: handler as never,
    replyOptions: { getUpstream } as never,
    undici: { connections: 1024, pipelining: 1, keepAliveTimeout: 30_000, tls: { rejectUnauthorized: true } } as never,
  });
}

export const requestIdHeader = 'x-request-id';
export const generateRequestId = (): string => randomUUID();
