/**
 * The per-request state of a proxied request: its admission ticket, its route and pool, and the one
 * place where its slot is released and its metrics are recorded (on the response's `close`, which
 * fires once for a completed response, an upstream error and a client that hung up alike).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { Ticket } from '../admission/ticket.js';
import { GatewayError, sendError } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import type { PoolRuntime } from '../pool/runtime.js';
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

export class RequestContext extends Ticket {
  /** Continues the fastify lifecycle once a slot is granted (the preHandler's `done`). */
  continue: (() => void) | undefined = undefined;
  /** Time the upstream's response headers arrived, for the pod's latency estimate. */
  firstByteMs = 0;
  failed = false;
  closed = false;
  /** The conversation this request belongs to (sticky pools). */
  conversationKey: string | undefined = undefined;
  /** Whether this request holds its conversation's turn (ordering) and must pass it on when done. */
  holdsTurn = false;
  /** socket.io traffic holds no slot: long polls and websockets are waits, not work. */
  socket = false;
  /** A socket.io handshake, whose open packet gets the pod token. */
  socketHandshake = false;
  /** The request body, read before admission so it can be replayed on a retry. */
  body: Buffer | undefined = undefined;
  /** Safe to send to another pod after a failure (see retry-policy.ts). */
  idempotent = false;
  attempts = 0;
  /** An attempt is at the pod and its answer has not come back yet. */
  upstreamPending = false;
  /** The upstream path, kept for a retry. */
  dest = '';
  /** Cuts a granted request at its deadline; undici's own timers are too coarse (~1 s) for that. */
  private deadlineTimer: NodeJS.Timeout | undefined = undefined;

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
    this.runtime.metrics.queueWait.observe((this.grantedAtMs - this.enqueuedAtMs) / 1000);
    if (this.deadlineMs !== Infinity) {
      this.deadlineTimer = setTimeout(onDeadline, Math.max(0, this.deadlineMs - this.grantedAtMs), this);
    }
    const next = this.continue;
    this.continue = undefined;
    next?.();
  }

  override repin(): Backend | undefined {
    const { affinity } = this.runtime;
    return this.conversationKey !== undefined && affinity ? affinity.backendFor(this.conversationKey) : undefined;
  }

  override onRejected(error: GatewayError): void {
    this.continue = undefined;
    this.fail(error);
  }

  /** Answers with a gateway error (if nothing was sent yet) and counts it. */
  fail(error: GatewayError): void {
    this.failed = true;
    if (this.closed) return;
    this.runtime.metrics.rejected(error.code);
    sendError(this.reply, error);
  }

  /**
   * Upstream answered with headers: the pod's latency sample (time to first byte). Returns false
   * when the client already has its answer (deadline or abort): the caller drops the upstream body.
   */
  responded(nowMs: number, status: number): boolean {
    this.firstByteMs = nowMs;
    this.clearDeadline();
    if (status >= 500) this.failed = true;
    return !this.closed && !this.reply.sent;
  }

  private clearDeadline(): void {
    if (this.deadlineTimer) {
      clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
  }

  /**
   * The pod is done with this request: its slot goes to the next waiter. Called when the upstream
   * body ends (the pod is free even if a slow client is still reading), else when the response closes.
   */
  releaseSlot(): void {
    if (this.state !== 'granted') return;
    const latency = this.firstByteMs > 0 ? this.firstByteMs - this.grantedAtMs : undefined;
    this.runtime.pool.release(this, this.failed ? 'error' : 'ok', latency);
  }

  /** The pod answered (headers) or the attempt failed; a request whose client already left frees its slot now. */
  upstreamAnswered(): void {
    this.upstreamPending = false;
    if (this.closed) this.releaseSlot();
  }

  /** The response is over (finished or aborted): give the slot back and record the request. */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearDeadline();
    const { pool, metrics } = this.runtime;
    const now = pool.now();
    if (this.state === 'queued') pool.cancel(this);
    // A pod still working on it keeps the slot until it answers (see upstream-dispatcher.ts).
    if (!this.upstreamPending) this.releaseSlot();
    if (this.holdsTurn) passTurn(this);
    if (this.socket) return;
    const res = this.reply.raw;
    metrics.request(res.writableFinished ? res.statusCode : CLIENT_CLOSED);
    metrics.duration.observe((now - this.startMs) / 1000);
  }
}

/** Hands the conversation's turn to its next waiting request, which then goes through admission. */
function passTurn(ctx: RequestContext): void {
  ctx.holdsTurn = false;
  const { affinity, pool } = ctx.runtime;
  const key = ctx.conversationKey as string;
  const next = affinity?.gate.leave(key) as RequestContext | undefined;
  if (!next) return;
  pool.queue.unpark(next);
  next.holdsTurn = true;
  next.target = affinity?.backendFor(key);
  pool.admit(next);
}

function onDeadline(ctx: RequestContext): void {
  if (ctx.firstByteMs === 0) ctx.fail(new GatewayError('DEADLINE_EXCEEDED'));
}

function onResponseClose(this: ResponseWithContext): void {
  this[kContext]?.finish();
}
