/**
 * socket.io traffic of a sticky pool. The handshake goes to the pod with the fewest sessions and its
 * open packet gets the pod token (affinity/socketio-sid.ts); later polls, POSTs and the websocket
 * upgrade go to the pod their sid names. No slot is taken: long polls and websockets wait, they do
 * not compute. Frames naming a conversation (`session_request`, `user_uttered`) bind it to the pod,
 * so REST calls on a widget's conversation reach the pod holding its socket.
 */
import { Readable } from 'node:stream';
import { countOpening, openingUpgraded } from '../affinity/socketio-opening.js';
import { openPacketSid, sidOf, splitSid, stripSidToken, tokeniseOpenPacket } from '../affinity/socketio-sid.js';
import { sessionIdsIn } from '../affinity/socketio-session.js';
import { GatewayError } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import type { PoolRuntime } from './pool-runtime.js';
import { bodyOf, readBodyLimited } from './body.js';
import { afterBody, guard, type RequestContext } from './request-context.js';

const sidParam = /[?&]sid=/;

/** What engine.io answers for a sid it does not know (the client then opens a new session), plus our catalog's code. */
function sessionUnknown(ctx: RequestContext): void {
  const { message } = new GatewayError('SESSION_UNKNOWN');
  ctx.runtime.metrics.rejected('SESSION_UNKNOWN');
  ctx.reply.code(400).header('content-type', 'application/json; charset=utf-8').send({ code: 1, message: 'Session ID unknown', error: { code: 'SESSION_UNKNOWN', message } });
}

/** Handshakes counted on their pod until the open packet names the session (socketio-opening.ts). */
const openings = new WeakMap<RequestContext, (podSid: string | undefined) => void>();

function proceed(ctx: RequestContext): void {
  const next = ctx.continue;
  ctx.continue = undefined;
  ctx.stage = 'proxy';
  next?.();
}

export function routeSocket(ctx: RequestContext): void {
  const { request } = ctx;
  const affinity = ctx.runtime.affinity!;
  ctx.socket = true;
  const sid = sidOf(request.url);
  let backend: Backend | undefined;
  if (sid === undefined && sidParam.test(request.url)) {
    sessionUnknown(ctx); // a sid that cannot be decoded names no session: never a new handshake
    return;
  }
  if (sid !== undefined) {
    const parts = splitSid(sid);
    backend = parts ? affinity.backendForToken(parts.token) : undefined;
    if (!backend || !parts) {
      sessionUnknown(ctx);
      return;
    }
    request.raw.url = stripSidToken(request.raw.url as string, sid, parts.sid);
    if (request.headers.upgrade !== undefined) openingUpgraded(parts.sid);
  } else {
    backend = affinity.pickForNewSocket();
    ctx.socketHandshake = request.headers.upgrade === undefined;
  }
  if (!backend) {
    ctx.fail(new GatewayError('NO_ENDPOINTS'));
    return;
  }
  ctx.backend = backend;
  if (ctx.socketHandshake) {
    const settle = countOpening(backend);
    openings.set(ctx, settle);
    ctx.reply.raw.once('close', () => settle(undefined));
  }
  if (request.headers.upgrade !== undefined) {
    const counted = backend;
    counted.sockets++;
    request.raw.socket.once('close', () => counted.sockets--);
  }
  if (request.method === 'POST') afterBody(ctx, bodyOf(request.body, ctx.runtime.config.bodyLimitBytes), 'socketio', learnSessions);
  else proceed(ctx);
}

/** A polling POST's packets may name the conversation: bind it to the socket's pod, then proxy. */
function learnSessions(ctx: RequestContext): void {
  const body = ctx.body as Buffer;
  ctx.request.body = Readable.from([body]);
  const { scheduler } = ctx.runtime;
  for (const id of sessionIdsIn(body.toString('utf8'))) scheduler.remember(id, ctx.backend as Backend);
  proceed(ctx);
}

/** Rewrites the engine.io open packet so its sid names the pod. */
export function sendTokenisedHandshake(ctx: RequestContext, stream: NodeJS.ReadableStream): void {
  readBodyLimited(stream, 64 * 1024).then(
    (body) => guard(ctx, 'socketio', (c) => sendOpenPacket(c, body.toString('utf8'))),
    () => ctx.fail(new GatewayError('UPSTREAM_FAILED')),
  );
}

function sendOpenPacket(ctx: RequestContext, text: string): void {
  const rewritten = ctx.backend ? tokeniseOpenPacket(text, ctx.backend) : undefined;
  openings.get(ctx)?.(rewritten === undefined ? undefined : openPacketSid(text));
  ctx.reply.removeHeader('content-length');
  ctx.reply.send(rewritten ?? text);
}

/** Websocket frames from a client: learn conversation ids as for polling POSTs. */
export function onSocketFrame(
  pools: ReadonlyMap<string, PoolRuntime>,
  target: { url?: string },
  message: { data: Buffer | string; binary: boolean },
): void {
  if (message.binary || !target.url) return;
  const ids = sessionIdsIn(message.data.toString());
  if (ids.length === 0) return;
  let origin: string;
  try {
    origin = new URL(target.url.replace(/^ws/, 'http')).origin;
  } catch {
    return; // new URL threw on a target it cannot parse (e.g. `ws://[`): such a url names no pod
  }
  for (const { pool, affinity, scheduler } of pools.values()) {
    const backend = affinity ? pool.get(origin) : undefined;
    if (backend) for (const id of ids) scheduler.remember(id, backend);
  }
}
