/**
 * A proxy listener's one route: every path goes through @fastify/http-proxy (undici underneath,
 * keep-alive per pod, streamed responses). Our logic sits in its seams:
 * - preHandler: match the route table, refuse protected Rasa routes on the public listener, read
 *   the body (bounded; before any slot is taken, so a slow client holds nothing and a retry can
 *   replay it), find the conversation key, then wait for a slot in the pool's central queue;
 * - `getUpstream`: the pod the slot is on;
 * - `onResponse` / `onError`: record the outcome, retry where safe, or answer with a clear error;
 * - the response's `close`: release the slot (RequestContext.finish).
 * The reply-from options are built once per pool, so the hot path allocates the request context,
 * the body buffer and little else.
 */
import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { GatewayError, sendError } from '../errors.js';
import type { PoolRuntime } from '../pool/runtime.js';
import { PublicAllowList, isProtectedRasaRoute } from '../routing/protected-routes.js';
import { classifyRasaRoute, type RasaRoute } from '../routing/rasa-routes.js';
import { pathOf, type RouteTable } from '../routing/route-table.js';
import { readBodyLimited, senderOf } from './body.js';
import { kContext, RequestContext } from './request-context.js';
import { retryReasonForError, retryReasonForStatus, type RetryReason } from './retry-policy.js';
import { onSocketFrame, routeSocket, sendTokenisedHandshake } from './socketio.js';
import { serveFromParseCache } from './parse-cache-route.js';
import { classifyUpstreamError } from './upstream-errors.js';
import { kUpstreamContext, TrackingDispatcher } from './upstream-dispatcher.js';

export interface ProxyOptions {
  readonly routes: RouteTable;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  /** False once draining has begun: new requests get 503 SHUTTING_DOWN. */
  readonly accepting: () => boolean;
  /** Public listener: refuse Rasa's state-changing routes unless `publicRoutes` allows them. */
  readonly protectRasaRoutes: boolean;
  readonly publicRoutes: readonly string[];
}

interface ReplyFromResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  stream: NodeJS.ReadableStream & { destroy(): void; resume(): void };
}

function contextOf(request: FastifyRequest): RequestContext {
  return request[kContext] as RequestContext;
}

function getUpstream(request: FastifyRequest): string {
  return contextOf(request).backend?.origin ?? '';
}

function onResponse(request: FastifyRequest, reply: FastifyReply, res: ReplyFromResponse): void {
  const ctx = contextOf(request);
  const reason = retryReasonForStatus(res.statusCode, ctx.idempotent);
  if (reason && retry(ctx, reason)) {
    res.stream.resume();
    for (const name of Object.keys(res.headers)) reply.removeHeader(name);
    return;
  }
  if (ctx.socketHandshake && res.statusCode === 200) {
    sendTokenisedHandshake(ctx, reply, res.stream);
    return;
  }
  if (ctx.responded(ctx.runtime.pool.now(), res.statusCode)) {
    res.stream.once('end', () => ctx.releaseSlot());
    reply.send(res.stream);
  } else res.stream.destroy();
}

function onError(reply: FastifyReply, { error }: { error: Error }): void {
  const ctx = contextOf(reply.request);
  const reason = retryReasonForError(error, ctx.idempotent);
  if (reason && retry(ctx, reason)) return;
  const deadlinePassed = ctx.runtime.pool.now() >= ctx.deadlineMs - 1;
  ctx.fail(classifyUpstreamError(error, deadlinePassed));
}

/** Sends the request to another pod if the policy, the budget and the deadline allow; see retry-policy.ts. */
function retry(ctx: RequestContext, reason: RetryReason): boolean {
  const { pool, affinity, retryBudget, metrics } = ctx.runtime;
  const failed = ctx.backend;
  if (ctx.attempts > 1 || ctx.closed || !failed) return false;
  if (pool.now() >= ctx.deadlineMs) return false;
  if (ctx.conversationKey === undefined && pool.workingCount < 2) return false;
  if (!retryBudget.trySpend()) return false;
  metrics.retried(reason);
  pool.release(ctx, 'error');
  ctx.state = 'new';
  ctx.avoid = failed;
  ctx.failed = false;
  ctx.firstByteMs = 0;
  ctx.continue = () => forward(ctx);
  if (ctx.conversationKey !== undefined && affinity) ctx.target = affinity.backendFor(ctx.conversationKey);
  pool.admit(ctx);
  return true;
}

/** One attempt: hand the request to reply-from for the granted pod. */
function forward(ctx: RequestContext): void {
  const { request, reply, runtime } = ctx;
  ctx.attempts++;
  if (ctx.body !== undefined) request.body = Readable.from([ctx.body]);
  let opts = runtime.fromOptions;
  if (ctx.deadlineMs !== Infinity) {
    const remaining = Math.floor(ctx.deadlineMs - runtime.pool.now());
    if (remaining <= 0) {
      ctx.fail(new GatewayError('DEADLINE_EXCEEDED'));
      return;
    }
    if (remaining < runtime.config.upstreamTimeoutMs) opts = fromOptions(remaining);
  }
  if (ctx.backend) reply.header('x-gateway-endpoint', ctx.backend.pod);
  ctx.upstreamPending = true;
  reply.from(ctx.dest, opts as never);
}

function rewriteRequestHeaders(request: FastifyRequest, headers: Record<string, string | string[] | undefined>) {
  const forwardedFor = headers['x-forwarded-for'];
  const ip = request.ip;
  headers['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${ip}` : ip;
  headers['x-forwarded-proto'] ??= request.protocol;
  headers['x-forwarded-host'] ??= request.headers.host;
  headers['x-request-id'] = request.id;
  (headers as Record<symbol, unknown>)[kUpstreamContext] = contextOf(request);
  return headers;
}

/** reply-from options shared by every request of a pool (and one per deadline-shortened timeout). */
export function fromOptions(timeout: number) {
  return { getUpstream, onResponse, onError, rewriteRequestHeaders, timeout };
}

/**
 * The request body. http-proxy's parser hands over the raw stream, except for text/plain, which
 * fastify's own parser has already read into a string; undefined when the request has none.
 */
export function bodyOf(request: FastifyRequest, limit: number): Promise<Buffer> | undefined {
  const body = request.body as NodeJS.ReadableStream | string | Buffer | undefined;
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return checkSize(Buffer.from(body), limit);
  if (Buffer.isBuffer(body)) return checkSize(body, limit);
  if (typeof body.on !== 'function') return undefined;
  return readBodyLimited(body, limit);
}

function checkSize(body: Buffer, limit: number): Promise<Buffer> {
  return body.length > limit ? Promise.reject(new GatewayError('BODY_TOO_LARGE', `the request body exceeds ${limit} bytes`)) : Promise.resolve(body);
}

function bodyError(err: unknown): GatewayError {
  return err instanceof GatewayError ? err : new GatewayError('BAD_REQUEST', 'the request body could not be read');
}

export async function proxyPlugin(app: FastifyInstance, options: ProxyOptions): Promise<void> {
  const allowList = new PublicAllowList(options.publicRoutes);
  const dispatcher = new TrackingDispatcher({ connections: 1024, pipelining: 1, keepAliveTimeout: 30_000, connect: { rejectUnauthorized: true } });

  function preHandler(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const path = pathOf(request.url);
    const route = options.routes.match(path);
    if (!route) {
      sendError(reply, new GatewayError('NO_ROUTE', `no route matches ${path}`));
      return;
    }
    if (route.methods && !route.methods.has(request.method)) {
      reply.header('allow', [...route.methods].join(', '));
      sendError(reply, new GatewayError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on this route`));
      return;
    }
    if (options.protectRasaRoutes && isProtectedRasaRoute(path) && !allowList.allows(path)) {
      sendError(reply, new GatewayError('FORBIDDEN_ROUTE', `${path} changes or reveals Rasa state; it is served on the internal listener (or allow it with publicRoutes)`));
      return;
    }
    const runtime = options.pools.get(route.pool) as PoolRuntime;
    const ctx = new RequestContext(request, reply, runtime, route, runtime.pool.now());
    if (!options.accepting()) {
      ctx.fail(new GatewayError('SHUTTING_DOWN'));
      return;
    }
    reply.header('x-request-id', request.id);
    const rasa = classifyRasaRoute(request.method, path);
    ctx.idempotent = rasa.idempotent;
    if (rasa.kind === 'socketio' && runtime.affinity) {
      routeSocket(ctx, done);
      return;
    }
    ctx.continue = done;
    runtime.retryBudget.deposit();
    const limit = route.config.bodyLimitBytes ?? runtime.config.bodyLimitBytes;
    const declared = Number(request.headers['content-length']);
    if (declared > limit) {
      ctx.fail(new GatewayError('BODY_TOO_LARGE', `the request body (${declared} bytes) exceeds ${limit} bytes`));
      return;
    }
    const reading = bodyOf(request, limit);
    if (!reading) {
      dispatch(ctx, rasa);
      return;
    }
    reading.then(
      (body) => {
        ctx.body = body;
        dispatch(ctx, rasa);
      },
      (err: unknown) => ctx.fail(bodyError(err)),
    );
  }

  /** Admission: keyed requests wait for their conversation's turn and pod; the rest for any slot. */
  function dispatch(ctx: RequestContext, rasa: RasaRoute): void {
    const { pool, affinity, config, metrics, cache } = ctx.runtime;
    if (cache && rasa.kind === 'model' && ctx.request.method === 'POST' && pathOf(ctx.request.url) === '/model/parse' && serveFromParseCache(ctx)) return;
    if (!affinity) {
      pool.admit(ctx);
      return;
    }
    if (rasa.kind === 'webhook') {
      const sender = senderOf(ctx.body ?? Buffer.alloc(0));
      if ('key' in sender) admitConversation(ctx, sender.key, config.ordering !== 'none');
      else {
        metrics.unkeyed(sender.unkeyed);
        pool.admit(ctx);
      }
    } else if (rasa.kind === 'conversation') {
      admitConversation(ctx, rasa.conversationId as string, config.ordering === 'all');
    } else {
      pool.admit(ctx);
    }
  }

  /** A keyed request: wait for the conversation's turn (ordering), then for a slot on its pod. */
  function admitConversation(ctx: RequestContext, key: string, ordered: boolean): void {
    const { pool, affinity, metrics } = ctx.runtime;
    ctx.conversationKey = key;
    if (ordered) {
      const waitIn = affinity!.gate.enter(key);
      if (waitIn) {
        metrics.conversationWait();
        pool.queue.park(ctx, waitIn);
        return;
      }
      ctx.holdsTurn = true;
    }
    ctx.target = affinity!.backendFor(key);
    pool.admit(ctx);
  }

  function handler(request: FastifyRequest, _reply: FastifyReply, dest: string): void {
    const ctx = contextOf(request);
    ctx.dest = dest;
    forward(ctx);
  }

  await app.register(httpProxy, {
    upstream: '',
    prefix: '/',
    http2: false,
    websocket: true,
    wsHooks: { onIncomingMessage: (_c: unknown, _s: unknown, target: { url?: string }, message: { data: Buffer | string; binary: boolean }) => onSocketFrame(options.pools, target, message) } as never,
    disableRequestLogging: true,
    preHandler,
    handler: handler as never,
    replyOptions: { getUpstream } as never,
    undici: dispatcher as never,
  });
  app.addHook('onClose', async () => {
    await dispatcher.close();
  });
}
