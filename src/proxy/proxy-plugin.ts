/**
 * A proxy listener's one route: every path goes through @fastify/http-proxy (undici underneath,
 * keep-alive per pod, streamed responses). The request path, top to bottom:
 *   route -> protect -> read body -> conversation key -> cache -> turn -> admit -> proxy -> release
 * - `preHandler` opens the request: match the route table, refuse protected Rasa routes on the
 *   public listener, then read the body (bounded; before any slot is taken, so a slow client holds
 *   nothing and a retry can replay it);
 * - `dispatch`: the parse cache, the conversation key and its turn, then a slot in the pool's queue;
 * - `forward`: one attempt at the granted pod through reply-from;
 * - `onResponse` / `onError`: record the outcome, retry where safe, or answer with a clear error;
 * - the response's `close`: release the slot (RequestContext.finish).
 * Every step runs behind the request's error boundary (`guard`): an exception ends that request with
 * 500 INTERNAL and never the process. The reply-from options are built once per pool, so the hot
 * path allocates the request context, the body buffer and little else.
 */
import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { GatewayError, sendError } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { PoolRuntime } from './pool-runtime.js';
import { PublicAllowList, isProtectedRasaRoute } from '../routing/protected-routes.js';
import { classifyRasaRoute, type RasaRoute } from '../routing/rasa-routes.js';
import { pathOf, type RouteTable } from '../routing/route-table.js';
import { bodyOf, senderOf } from './body.js';
import { stripHopByHop, upstreamRequestHeaders } from './hop-by-hop.js';
import { requestProblem } from './request-checks.js';
import { afterBody, guard, kContext, RequestContext } from './request-context.js';
import { retryReasonForError, retryReasonForStatus, type RetryReason } from './retry-policy.js';
import { onSocketFrame, routeSocket, sendTokenisedHandshake } from './socketio.js';
import { serveFromParseCache } from './parse-cache-route.js';
import { classifyUpstreamError } from '../pool/upstream-failure.js';
import { kUpstreamContext, TrackingDispatcher } from './upstream-dispatcher.js';

export interface ProxyOptions {
  readonly routes: RouteTable;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  readonly metrics: GatewayMetrics;
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
  ctx.stage = 'response';
  try {
    handleResponse(ctx, reply, res);
  } catch (err) {
    res.stream.destroy();
    ctx.internalError(err);
  }
}

function handleResponse(ctx: RequestContext, reply: FastifyReply, res: ReplyFromResponse): void {
  const reason = retryReasonForStatus(res.statusCode, ctx.idempotent);
  if (reason && retry(ctx, reason)) {
    res.stream.resume();
    for (const name of Object.keys(res.headers)) reply.removeHeader(name);
    return;
  }
  if (ctx.socketHandshake && res.statusCode === 200) {
    sendTokenisedHandshake(ctx, res.stream);
    return;
  }
  if (ctx.responded(ctx.runtime.pool.now(), res.statusCode)) {
    res.stream.once('end', () => guard(ctx, 'release', releasing));
    reply.send(res.stream);
  } else res.stream.destroy();
}

function releasing(ctx: RequestContext): void {
  ctx.endAttempt();
}

function onError(reply: FastifyReply, { error }: { error: Error }): void {
  const ctx = contextOf(reply.request);
  ctx.stage = 'response';
  try {
    const reason = retryReasonForError(error, ctx.idempotent);
    if (reason && retry(ctx, reason)) return;
    const failure = classifyUpstreamError(error, ctx.runtime.pool.now() >= ctx.deadlineMs - 1);
    ctx.outcome = failure.outcome;
    ctx.fail(failure.error);
  } catch (err) {
    ctx.internalError(err);
  }
}

/** Sends the request to another pod if the policy, the budget and the deadline allow; see retry-policy.ts. */
function retry(ctx: RequestContext, reason: RetryReason): boolean {
  const { pool, scheduler, retryBudget, metrics } = ctx.runtime;
  const failed = ctx.backend;
  if (ctx.attempts > 1 || ctx.closed || !failed) return false;
  if (pool.now() >= ctx.deadlineMs) return false;
  if (ctx.conversationKey === undefined && pool.workingCount < 2) return false;
  if (!retryBudget.trySpend()) return false;
  metrics.retried(reason);
  ctx.outcome = 'pod-error';
  ctx.endAttempt();
  ctx.state = 'new';
  ctx.avoid = failed;
  ctx.outcome = 'ok';
  ctx.firstByteMs = 0;
  ctx.continue = () => forward(ctx);
  ctx.stage = 'admit';
  scheduler.admitAgain(ctx);
  return true;
}

/** One attempt: hand the request to reply-from for the granted pod. */
function forward(ctx: RequestContext): void {
  const { request, reply, runtime } = ctx;
  ctx.stage = 'proxy';
  ctx.attempts++;
  let opts = runtime.fromOptions;
  if (ctx.deadlineMs !== Infinity) {
    const remaining = Math.floor(ctx.deadlineMs - runtime.pool.now());
    if (remaining <= 0) {
      ctx.fail(new GatewayError('DEADLINE_EXCEEDED'));
      return;
    }
    if (remaining < runtime.config.upstreamTimeoutMs) opts = fromOptions(remaining);
  }
  const body = ctx.body;
  if (body !== undefined) {
    const contentType = request.headers['content-type'];
    // The bytes as read, sent as one buffer (reply-from takes `body` + `contentType` raw); a stream
    // per attempt cost more than the rest of the step. Without a content type reply-from would invent
    // one, so such bodies go as a stream.
    if (body.length > 0 && contentType !== undefined && request.method !== 'GET' && request.method !== 'HEAD') opts = { ...opts, body, contentType };
    else request.body = Readable.from([body]);
  }
  if (ctx.backend) reply.header('x-gateway-endpoint', ctx.backend.pod);
  reply.from(ctx.dest, opts as never);
}

function rewriteRequestHeaders(request: FastifyRequest, original: Record<string, string | string[] | undefined>) {
  const ctx = contextOf(request);
  const headers = upstreamRequestHeaders(original, ctx.body?.length);
  const forwardedFor = headers['x-forwarded-for'];
  const ip = request.ip;
  headers['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${ip}` : ip;
  headers['x-forwarded-proto'] ??= request.protocol;
  headers['x-forwarded-host'] ??= request.headers.host;
  headers['x-request-id'] = request.id;
  (headers as Record<symbol, unknown>)[kUpstreamContext] = ctx;
  return headers;
}

/** The pod's answer headers as the client gets them: nothing that describes the pod's connection. */
function rewriteHeaders(headers: Record<string, string | string[] | undefined>) {
  return stripHopByHop(headers);
}

/** reply-from options shared by every request of a pool (and one per deadline-shortened timeout). */
export function fromOptions(timeout: number) {
  return { getUpstream, onResponse, onError, rewriteRequestHeaders, rewriteHeaders, timeout };
}

/** Read the body (bounded), then dispatch; socket.io traffic of a sticky pool goes its own way. */
function readBody(ctx: RequestContext): void {
  const { request, runtime, rasa } = ctx;
  if (rasa.kind === 'socketio' && runtime.affinity) {
    ctx.stage = 'socketio';
    routeSocket(ctx);
    return;
  }
  runtime.retryBudget.deposit();
  const limit = ctx.route.config.bodyLimitBytes ?? runtime.config.bodyLimitBytes;
  const declared = Number(request.headers['content-length']);
  if (declared > limit) {
    ctx.fail(new GatewayError('BODY_TOO_LARGE', `the request body (${declared} bytes) exceeds ${limit} bytes`));
    return;
  }
  afterBody(ctx, bodyOf(request.body, limit), 'key', dispatch);
}

/** The parse cache answers what it can; everything else goes on to admission. */
function dispatch(ctx: RequestContext): void {
  const { rasa, runtime, request } = ctx;
  if (runtime.cache && rasa.kind === 'model' && request.method === 'POST' && pathOf(request.url) === '/model/parse') {
    ctx.stage = 'cache';
    serveFromParseCache(ctx).then(
      (served) => {
        if (!served) guard(ctx, 'key', admitByKey);
      },
      (err: unknown) => ctx.internalError(err),
    );
    return;
  }
  admitByKey(ctx);
}

/**
 * The conversation key (sticky pools), then scheduling: keyed requests wait for their conversation's
 * turn (when ordered) and a slot on its pod, the rest for any slot (see scheduling/scheduler.ts).
 */
function admitByKey(ctx: RequestContext): void {
  const { scheduler, affinity, config, metrics } = ctx.runtime;
  const { rasa } = ctx;
  ctx.runtime.capacity?.arrived(rasa.kind);
  ctx.stage = 'key';
  if (affinity && rasa.kind === 'webhook') {
    const sender = senderOf(ctx.body ?? Buffer.alloc(0));
    if ('key' in sender) {
      ctx.conversationKey = sender.key;
      ctx.ordered = config.ordering !== 'none';
    } else {
      metrics.unkeyed(sender.unkeyed);
    }
  } else if (affinity && rasa.kind === 'conversation') {
    ctx.conversationKey = rasa.conversationId as string;
    ctx.ordered = config.ordering === 'all';
  }
  ctx.stage = 'admit';
  scheduler.admit(ctx);
}

export async function proxyPlugin(app: FastifyInstance, options: ProxyOptions): Promise<void> {
  const allowList = new PublicAllowList(options.publicRoutes);
  const dispatcher = new TrackingDispatcher({ connections: 1024, pipelining: 1, keepAliveTimeout: 30_000, connect: { rejectUnauthorized: true } });

  /** Route and protect: the request's context, or undefined when it was already answered. */
  function open(request: FastifyRequest, reply: FastifyReply): RequestContext | undefined {
    const path = pathOf(request.url);
    const { raw } = request;
    const problem = requestProblem({
      method: request.method,
      path,
      httpVersionMajor: raw.httpVersionMajor,
      httpVersionMinor: raw.httpVersionMinor,
      headers: request.headers,
      upgrading: (raw as { upgrade?: boolean }).upgrade === true,
    });
    if (problem !== undefined) {
      sendError(reply, problem);
      return undefined;
    }
    const route = options.routes.match(path);
    if (!route) {
      sendError(reply, new GatewayError('NO_ROUTE', `no route matches ${path}`));
      return undefined;
    }
    if (route.methods && !route.methods.has(request.method)) {
      reply.header('allow', [...route.methods].join(', '));
      sendError(reply, new GatewayError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on this route`));
      return undefined;
    }
    if (options.protectRasaRoutes && isProtectedRasaRoute(path) && !allowList.allows(path)) {
      sendError(reply, new GatewayError('FORBIDDEN_ROUTE', `${path} changes or reveals Rasa state; it is served on the internal listener (or allow it with publicRoutes)`));
      return undefined;
    }
    const runtime = options.pools.get(route.pool) as PoolRuntime;
    const ctx = new RequestContext(request, reply, runtime, route, runtime.pool.now());
    if (!options.accepting()) {
      ctx.fail(new GatewayError('SHUTTING_DOWN'));
      return undefined;
    }
    reply.header('x-request-id', request.id);
    ctx.rasa = classifyRasaRoute(request.method, path);
    ctx.idempotent = ctx.rasa.idempotent;
    return ctx;
  }

  function preHandler(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    let ctx: RequestContext | undefined;
    try {
      ctx = open(request, reply);
    } catch (err) {
      // No context yet: the boundary of last resort for this request.
      options.metrics.internalError('none', 'route');
      request.log.error({ err, reqId: request.id, stage: 'route' }, 'internal error on the request path; this request ends, the gateway keeps serving');
      sendError(reply, new GatewayError('INTERNAL'));
      return;
    }
    if (!ctx) return;
    ctx.continue = done;
    guard(ctx, 'body', readBody);
  }

  function handler(request: FastifyRequest, _reply: FastifyReply, dest: string): void {
    const ctx = contextOf(request);
    ctx.dest = dest;
    guard(ctx, 'proxy', forward);
  }

  function onIncomingMessage(_c: unknown, _s: unknown, target: { url?: string }, message: { data: Buffer | string; binary: boolean }): void {
    try {
      onSocketFrame(options.pools, target, message);
    } catch (err) {
      options.metrics.internalError('none', 'socketio');
      app.log.error({ err, stage: 'socketio' }, 'internal error reading a websocket frame; the frame is still forwarded');
    }
  }

  // fastify's own text/plain parser decodes the body as UTF-8, and a proxy must forward bytes as
  // they came (a socket.io polling POST is text/plain); http-proxy's catch-all parser keeps them raw.
  app.removeContentTypeParser('text/plain');
  await app.register(httpProxy, {
    upstream: '',
    prefix: '/',
    http2: false,
    websocket: true,
    wsHooks: { onIncomingMessage } as never,
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
