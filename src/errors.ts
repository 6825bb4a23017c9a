/**
 * Every error the gateway itself answers, in one place: a stable `code` that clients, dashboards and
 * tests match on, the HTTP status, and the default message. Bodies are always
 * `{ "error": { "code", "message" } }`; 503s carry Retry-After so well-behaved clients back off.
 */
import type { FastifyReply } from 'fastify';
import { STATUS_CODES, type ServerResponse } from 'node:http';

export const errorCatalog = {
  QUEUE_FULL: { status: 503, message: 'the pool queue is full; retry later' },
  QUEUE_TIMEOUT: { status: 503, message: 'no upstream slot became free within the queue wait limit' },
  NO_ENDPOINTS: { status: 503, message: 'the pool has no ready endpoint' },
  SHUTTING_DOWN: { status: 503, message: 'the gateway is shutting down' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'the upstream pod refused or failed the connection' },
  UPSTREAM_FAILED: { status: 502, message: 'the upstream pod failed mid-request; the request may have been partly processed' },
  UPSTREAM_BAD_RESPONSE: { status: 502, message: 'the upstream pod sent an invalid response' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream pod did not answer within the upstream timeout' },
  DEADLINE_EXCEEDED: { status: 504, message: 'the request deadline passed before an answer arrived' },
  NO_ROUTE: { status: 404, message: 'no route matches this path' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'this route does not accept the method' },
  FORBIDDEN_ROUTE: { status: 403, message: 'this Rasa route is not exposed on the public listener' },
  BODY_TOO_LARGE: { status: 413, message: 'the request body exceeds the route limit' },
  BAD_REQUEST: { status: 400, message: 'the request is malformed' },
  REQUEST_TIMEOUT: { status: 408, message: 'the client was too slow sending the request' },
  HEADERS_TOO_LARGE: { status: 431, message: 'the request headers exceed the size or count limit' },
  EXPECTATION_FAILED: { status: 417, message: 'the only Expect value the gateway accepts is 100-continue' },
  SESSION_UNKNOWN: { status: 400, message: 'the socket.io session id names no pod of this pool; open a new session' },
  INTERNAL: { status: 500, message: 'internal gateway error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalog;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds for the Retry-After header on 503s. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message?: string, retryAfterSeconds?: number) {
    super(message ?? errorCatalog[code].message);
    this.code = code;
    this.status = errorCatalog[code].status;
    this.retryAfterSeconds = retryAfterSeconds ?? (this.status === 503 ? 1 : undefined);
  }
}

export function errorBody(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * The catalog code for a status that a library (fastify, Node's HTTP parser, reply-from) chose: the
 * answer then carries the catalog's status for that code, never a foreign one.
 */
export function codeForStatus(status: number): ErrorCode {
  if (status === 413) return 'BODY_TOO_LARGE';
  if (status === 408) return 'REQUEST_TIMEOUT';
  if (status === 431) return 'HEADERS_TOO_LARGE';
  if (status === 417) return 'EXPECTATION_FAILED';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (status === 404) return 'NO_ROUTE';
  return status >= 400 && status < 500 ? 'BAD_REQUEST' : 'INTERNAL';
}

/** A whole HTTP/1.1 error answer for a raw socket (Node's parser refused the bytes: no request object exists). */
export function rawErrorResponse(error: GatewayError): string {
  const body = errorBody(error.code, error.message);
  return (
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
    `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Answers on a bare Node response (before fastify has a request for it) and closes the connection. */
export function endWithError(res: ServerResponse, error: GatewayError): void {
  const body = errorBody(error.code, error.message);
  res.writeHead(error.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
}

/** Sends a gateway error unless a response has already started. */
export function sendError(reply: FastifyReply, error: GatewayError): void {
  if (reply.sent || reply.raw.headersSent) return;
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  reply
    .code(error.status)
    .header('content-type', 'application/json; charset=utf-8')
    .send(errorBody(error.code, error.message));
}
