/**
 * The per-request state of a proxied request: its admission ticket, its route and pool, the one
 * place where its slot is released and its metrics are recorded (on the response's `close`, which
 * fires once for a completed response, an upstream error and a client that hung up alike), and its
 * error boundary: an exception in any step of the request path ends this request only (500
 * INTERNAL, counted by stage, logged with the request id), its slot and turn released as for any
 * other ending. Callbacks that arrive from elsewhere (a grant from another request's release, a
 * timer, undici, a stream event) enter through `guard`, so nothing thrown there reaches the process.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { ScheduledTicket } from '../scheduling/scheduler.js';
import { codeForStatus, GatewayError, sendError } from '../errors.js';
import { bodyError } from './body.js';
import type { Backend } from '../pool/backend.js';
import type { Outcome } from '../pool/pool.js';
import type { PoolRuntime } from './pool-runtime.js';
import type { RasaRoute } from '../routing/rasa-routes.js';
import type { Route } from '../routing/route-table.js';

export const kContext = Symbol('gateway.context');

declare module 'fastify' {
  interface FastifyRequest {
    [kContext]?: RequestContext;
  }
}

type ResponseWithContext = ServerResponse & { [kContext]?: RequestContext };

/** nginx's convention for "client closed the request before the answer". */
export const CLIENT_CLOSED = 499;

const unclassified: RasaRoute = { kind: 'other', idempotent: false };

/** The steps of the request path, as `gateway_internal_errors_total{stage}` names them. */
export type Stage = 'route' | 'protect' | 'body' | 'key' | 'cache' | 'turn' | 'admit' | 'proxy' | 'response' | 'socketio' | 'release';

export class RequestContext extends ScheduledTicket {
  /** Continues the fastify lifecycle once a slot is granted (the preHandler's `done`). */
  continue: (() => void) | undefined = undefined;
  /** The step the request is in: what an exception is counted against. */
  stage: Stage = 'route';
  /** How the current attempt ended so far; what the slot is released with. */
  outcome: Outcome = 'ok';
  /** Time the upstream's response headers arrived, for the pod's latency estimate. */
  firstByteMs = 0;
  closed = false;
  /** What Rasa route this is: where its conversation key is, whether a retry is safe. */
  rasa: RasaRoute = unclassified;
  /** socket.io traffic holds no slot: long polls and websockets are waits, not work. */
  socket = false;
  /** A socket.io handshake, whose open packet gets the pod token. */
  socketHandshake = false;
  /** The request body, read before admission so it can be replayed on a retry. */
  body: Buffer | undefined = undefined;
  /** Safe to send to another pod after a failure (see retry-policy.ts). */
  idempotent = false;
  attempts = 0;
  /** An attempt was handed to undici for a pod (what a failure is then counted as). */
  reachedPod = false;
  /** An attempt is at the pod (undici has it) and its answer has not come back yet. */
  upstreamPending = false;
  /** The upstream path, kept for a retry. */
  dest = '';
  /** Cuts a granted request at its deadline; undici's own timers are too coarse (~1 s) for that. */
  deadlineTimer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    readonly runtime: PoolRuntime,
    readonly route: Route,
    readonly startMs: number,
  ) {
    super();
    if (route.deadlineMs !== undefined) this.deadlineMs = startMs + route.deadlineMs;
    request[kContext] = this;
    const res = reply.raw as ResponseWithContext;
    res[kContext] = this;
    res.once('close', onResponseClose);
  }

  override onGranted(_backend: Backend): void {
    guard(this, 'admit', granted);
  }

  override onTurn(): void {
    guard(this, 'turn', admitWithTurn);
  }

  override onRejected(error: GatewayError): void {
    this.continue = undefined;
    this.fail(error);
  }

  /**
   * Answers with a gateway error (if nothing was sent yet) and counts it: as a rejection when the
   * request never reached a pod, else as an upstream failure.
   */
  fail(error: GatewayError): void {
    if (this.closed) return;
    if (this.reachedPod || error.code.startsWith('UPSTREAM_')) this.runtime.metrics.upstreamFailed(error.code);
    else this.runtime.metrics.rejected(error.code);
    sendError(this.reply, error);
  }

  /**
   * An exception on this request's path. One the framework raised about the request itself (a
   * 4xx `statusCode`, or a URIError from decoding what the client sent) is answered as the client's
   * error; anything else is ours: 500 INTERNAL, logged with the stack and counted by stage. Either
   * way only this request ends; the response's `close` then releases its slot and turn.
   */
  internalError(err: unknown): void {
    try {
      this.continue = undefined;
      const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
      if (err instanceof URIError || (typeof status === 'number' && status >= 400 && status < 500)) {
        this.fail(new GatewayError(err instanceof URIError ? 'BAD_REQUEST' : codeForStatus(status as number)));
        return;
      }
      if (this.lease && !this.lease.released && !this.upstreamPending) this.outcome = 'gateway-error';
      this.runtime.metrics.internalError(this.stage);
      this.request.log.error({ err, reqId: this.request.id, pool: this.runtime.pool.name, stage: this.stage }, 'internal error on the request path; this request ends, the gateway keeps serving');
      if (this.reply.raw.headersSent) this.reply.raw.destroy();
      else this.fail(new GatewayError('INTERNAL'));
    } catch {
      this.reply.raw.destroy();
    }
  }

  /**
   * Upstream answered with headers: the pod's latency sample (time to first byte). Returns false
   * when the client already has its answer (deadline or abort): the caller drops the upstream body.
   */
  responded(nowMs: number, status: number): boolean {
    this.firstByteMs = nowMs;
    this.clearDeadline();
    this.outcome = status >= 500 ? 'pod-error' : 'ok';
    return !this.closed && !this.reply.sent;
  }

  clearDeadline(): void {
    if (this.deadlineTimer) {
      clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
  }

  /**
   * The pod is done with this attempt: its lease ends with the attempt's outcome and latency, and the
   * slot goes to the next waiter. Called when the upstream body ends (the pod is free even if a slow
   * client is still reading), when the response closes, when a late answer arrives for a client that
   * left, and when a retry moves on; the lease counts only the first.
   */
  endAttempt(): void {
    const lease = this.lease;
    if (!lease || lease.released) return;
    lease.release(this.outcome, this.firstByteMs > 0 ? this.firstByteMs - lease.grantedAtMs : undefined);
  }

  /** undici took the attempt: from now on only its answer (or failure) frees the slot. */
  upstreamStarted(): void {
    this.upstreamPending = true;
    this.reachedPod = true;
  }

  /**
   * The pod answered (headers) or the attempt failed. A request whose client already left frees its
   * slot now, with what the pod did: its latency when it answered, its failure when it did not.
   */
  upstreamAnswered(outcome: Outcome | undefined, statusCode: number | undefined): void {
    this.upstreamPending = false;
    if (!this.closed) return;
    if (statusCode !== undefined && this.firstByteMs === 0) this.responded(this.runtime.pool.now(), statusCode);
    else if (outcome !== undefined) this.outcome = outcome;
    this.endAttempt();
  }

  /** The response is over (finished or aborted): give the slot back and record the request. */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearDeadline();
    const { pool, scheduler, metrics } = this.runtime;
    const now = pool.now();
    // A pod still working on it keeps the slot until it answers (see upstream-dispatcher.ts).
    if (!this.upstreamPending) this.endAttempt();
    scheduler.finish(this);
    if (this.socket) return;
    const res = this.reply.raw;
    metrics.request(res.writableFinished ? res.statusCode : CLIENT_CLOSED);
    metrics.duration.observe((now - this.startMs) / 1000);
  }
}

/**
 * Runs one step of a request's path behind its error boundary. Steps are plain functions of the
 * context (no closure per request); `stage` names the step in metrics and logs.
 */
export function guard(ctx: RequestContext, stage: Stage, stepFn: (ctx: RequestContext) => void): void {
  ctx.stage = stage;
  try {
    stepFn(ctx);
  } catch (err) {
    ctx.internalError(err);
  }
}

/** Runs `next` once the body is read (at once when there is none); a body that cannot be read ends the request. */
export function afterBody(ctx: RequestContext, reading: Promise<Buffer> | undefined, stage: Stage, next: (ctx: RequestContext) => void): void {
  if (!reading) {
    next(ctx);
    return;
  }
  reading.then(
    (body) => {
      ctx.body = body;
      guard(ctx, stage, next);
    },
    (err: unknown) => ctx.fail(bodyError(err)),
  );
}

/** A slot is ours: start the deadline, then continue the fastify lifecycle (or a retry's attempt). */
function granted(ctx: RequestContext): void {
  ctx.runtime.metrics.queueWait.observe((ctx.grantedAtMs - ctx.enqueuedAtMs) / 1000);
  ctx.clearDeadline(); // a retry's new grant replaces the first attempt's timer
  if (ctx.deadlineMs !== Infinity) ctx.deadlineTimer = setTimeout(onDeadline, Math.max(0, ctx.deadlineMs - ctx.grantedAtMs), ctx);
  ctx.stage = 'proxy';
  const next = ctx.continue;
  ctx.continue = undefined;
  next?.();
}

/** The conversation's turn came: on to a slot. */
function admitWithTurn(ctx: RequestContext): void {
  ctx.stage = 'admit';
  ctx.runtime.scheduler.admitAgain(ctx);
}

function onDeadline(ctx: RequestContext): void {
  if (ctx.firstByteMs === 0) guard(ctx, 'proxy', deadlinePassed);
}

function deadlinePassed(ctx: RequestContext): void {
  ctx.fail(new GatewayError('DEADLINE_EXCEEDED'));
}

function finishing(ctx: RequestContext): void {
  ctx.finish();
}

function onResponseClose(this: ResponseWithContext): void {
  const ctx = this[kContext];
  if (ctx) guard(ctx, 'release', finishing);
}
