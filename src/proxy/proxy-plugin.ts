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
import { Readable } from 'node:stream';
import { classifyRasaRoute } from '../routing/rasa-routes.js';
import { readBodyLimited, senderOf } from './body.js';
import { sidOf, splitSid, stripSidToken, tokeniseOpenPacket } from '../affinity/socketio-sid.js';
import { sessionIdsIn } from '../affinity/socketio-session.js';
import type { Backend } from '../pool/backend.js';

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
  if (ctx.socketHandshake && res.statusCode === 200) {
    sendTokenisedHandshake(ctx, reply, res.stream);
    return;
  }
  if (ctx.responded(ctx.runtime.pool.now(), res.statusCode)) reply.send(res.stream);
  else (res.stream as NodeJS.ReadableStream & { destroy(): void }).destroy();
}

function onError(reply: FastifyReply, { error }: { error: Error }): void {
  const ctx = contextOf(reply.request);
  const deadlinePassed = ctx.runtime.pool.now() >= ctx.deadlineMs - 1;
  ctx.fail(classifyUpstreamError(error, deadlinePassed));
}

/**
 * The request body. http-proxy's parser hands over the raw stream, except for text/plain, which
 * fastify's own parser has already read into a string; empty when the request has none.
 */
function bodyOf(request: FastifyRequest, limit: number): Promise<Buffer> {
  const body = request.body as NodeJS.ReadableStream | string | Buffer | undefined;
  if (typeof body === 'string') return Promise.resolve(Buffer.from(body));
  if (Buffer.isBuffer(body)) return Promise.resolve(body);
  if (!body || typeof body.on !== 'function') return Promise.resolve(Buffer.alloc(0));
  return readBodyLimited(body, limit);
}

/** Rewrites the engine.io open packet so its sid names the pod (see affinity/socketio-sid.ts). */
function sendTokenisedHandshake(ctx: RequestContext, reply: FastifyReply, stream: NodeJS.ReadableStream): void {
  readBodyLimited(stream, 64 * 1024).then(
    (body) => {
      const text = body.toString('utf8');
      const rewritten = ctx.backend ? tokeniseOpenPacket(text, ctx.backend) : undefined;
      reply.removeHeader('content-length');
      reply.send(rewritten ?? text);
    },
    () => ctx.fail(new GatewayError('UPSTREAM_FAILED')),
  );
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
    if (!runtime.affinity) {
      runtime.pool.admit(ctx);
      return;
    }
    const rasa = classifyRasaRoute(request.method, pathOf(request.url));
    const ordering = runtime.config.ordering;
    switch (rasa.kind) {
      case 'socketio':
        routeSocket(ctx, done);
        return;
      case 'webhook':
        bodyOf(request, runtime.config.webhookBodyLimitBytes).then(
          (body) => {
            request.body = Readable.from([body]);
            const sender = senderOf(body);
            if ('key' in sender) admitConversation(ctx, sender.key, ordering !== 'none');
            else {
              runtime.metrics.unkeyed(sender.unkeyed);
              runtime.pool.admit(ctx);
            }
          },
          (err: unknown) => ctx.fail(err instanceof GatewayError ? err : new GatewayError('BAD_REQUEST', 'the request body could not be read')),
        );
        return;
      case 'conversation':
        admitConversation(ctx, rasa.conversationId as string, ordering === 'all');
        return;
      default:
        runtime.pool.admit(ctx);
    }
  }

  /** A keyed request: wait for the conversation's turn (ordering), then for a slot on its pod. */
  function admitConversation(ctx: RequestContext, key: string, ordered: boolean): void {
    const { pool, affinity, metrics } = ctx.runtime;
    ctx.conversationKey = key;
    if (ordered) {
      const waitFor = affinity!.gate.enter(key);
      if (waitFor) {
        metrics.conversationWait();
        pool.queue.park(ctx, waitFor);
        return;
      }
      ctx.holdsTurn = true;
    }
    ctx.target = affinity!.backendFor(key);
    pool.admit(ctx);
  }

  /**
   * socket.io: the handshake goes to the pod with the fewest sessions, later requests to the pod named
   * by their sid's token. No slot is taken: long polls and websockets wait, they do not compute.
   */
  function routeSocket(ctx: RequestContext, done: () => void): void {
    const { request } = ctx;
    const affinity = ctx.runtime.affinity!;
    ctx.socket = true;
    ctx.continue = undefined;
    const sid = sidOf(request.url);
    let backend;
    if (sid !== undefined) {
      const parts = splitSid(sid);
      backend = parts ? affinity.backendForToken(parts.token) : undefined;
      if (!backend || !parts) {
        // What engine.io itself answers for a sid it does not know: the client starts a new session.
        ctx.reply.code(400).header('content-type', 'application/json').send({ code: 1, message: 'Session ID unknown' });
        return;
      }
      request.raw.url = stripSidToken(request.raw.url as string, sid, parts.sid);
    } else {
      backend = affinity.pickForNewSocket();
      ctx.socketHandshake = request.headers.upgrade === undefined;
    }
    if (!backend) {
      ctx.fail(new GatewayError('NO_ENDPOINTS'));
      return;
    }
    ctx.backend = backend;
    if (request.headers.upgrade !== undefined) {
      const socket = request.raw.socket;
      const counted = backend;
      counted.sockets++;
      socket.once('close', () => counted.sockets--);
    }
    if (request.method !== 'POST') {
      done();
      return;
    }
    // A polling POST carries socket.io frames: learn the conversation ids it names.
    const target = backend;
    bodyOf(request, ctx.runtime.config.webhookBodyLimitBytes).then(
      (body) => {
        request.body = Readable.from([body]);
        for (const id of sessionIdsIn(body.toString('utf8'))) affinity.remember(id, target);
        done();
      },
      (err: unknown) => ctx.fail(err instanceof GatewayError ? err : new GatewayError('BAD_REQUEST', 'the request body could not be read')),
    );
  }

  /** Websocket frames from the client: learn conversation ids as for polling POSTs. */
  function onIncomingMessage(_context: unknown, _source: unknown, target: { url?: string }, message: { data: Buffer | string; binary: boolean }): void {
    if (message.binary || !target.url) return;
    const ids = sessionIdsIn(message.data.toString());
    if (ids.length === 0) return;
    const origin = new URL(target.url.replace(/^ws/, 'http')).origin;
    for (const { pool, affinity } of options.pools.values()) {
      const backend: Backend | undefined = affinity ? pool.get(origin) : undefined;
      if (backend) for (const id of ids) affinity!.remember(id, backend);
    }
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
    websocket: true,
    wsHooks: { onIncomingMessage } as never,
    disableRequestLogging: true,
    preHandler,
    handler: handler as never,
    replyOptions: { getUpstream } as never,
    undici: { connections: 1024, pipelining: 1, keepAliveTimeout: 30_000, tls: { rejectUnauthorized: true } } as never,
  });
}

export const requestIdHeader = 'x-request-id';
export const generateRequestId = (): string => randomUUID();
