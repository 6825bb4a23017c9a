/**
 * Maps what went wrong on the way to a pod onto the gateway's error codes and onto the attempt's
 * outcome, so only what the pod did counts against it:
 * - refused or unreachable: 502 UPSTREAM_UNAVAILABLE (nothing was sent), the pod's failure;
 * - reset or broken mid-request: 502 UPSTREAM_FAILED (the pod may have done part of the work);
 * - too slow: 504 UPSTREAM_TIMEOUT, or DEADLINE_EXCEEDED when the request's own deadline cut it short;
 * - undici refused to send the request as the client framed it (an `expect` or framing header, a
 *   content-length that does not match): 400 BAD_REQUEST, a gateway-side outcome, never the pod's;
 * - the client went away (the request was aborted): the client's, never the pod's.
 */
import { GatewayError } from '../errors.js';
import type { Outcome } from './outcome.js';

const refused = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const timeouts = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT']);
/** undici's own refusals of a request before it is written: about the request, not the pod. */
const unsendable = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_URL']);
const aborted = new Set(['UND_ERR_ABORTED', 'ABORT_ERR']);

export interface UpstreamFailure {
  readonly error: GatewayError;
  readonly outcome: Outcome;
}

function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') codes.push(e.code);
  }
  return codes;
}

export function classifyUpstreamError(error: unknown, deadlinePassed: boolean): UpstreamFailure {
  const codes = codesOf(error);
  if (codes.some((c) => unsendable.has(c))) {
    return { error: new GatewayError('BAD_REQUEST', 'the request could not be forwarded as it was framed'), outcome: 'gateway-error' };
  }
  if (codes.some((c) => aborted.has(c))) return { error: new GatewayError('UPSTREAM_FAILED'), outcome: 'client-left' };
  if (codes.some((c) => refused.has(c))) return { error: new GatewayError('UPSTREAM_UNAVAILABLE'), outcome: 'pod-error' };
  if (codes.some((c) => timeouts.has(c))) return { error: new GatewayError(deadlinePassed ? 'DEADLINE_EXCEEDED' : 'UPSTREAM_TIMEOUT'), outcome: 'timeout' };
  if (codes.includes('FST_REPLY_FROM_BAD_GATEWAY')) return { error: new GatewayError('UPSTREAM_BAD_RESPONSE'), outcome: 'pod-error' };
  // No code at all is an exception of our own making (fetch's TypeErrors carry the network code in `cause`).
  if (codes.length === 0) return { error: new GatewayError('INTERNAL'), outcome: 'gateway-error' };
  return { error: new GatewayError('UPSTREAM_FAILED'), outcome: 'pod-error' };
}

/** Whether the failure happened before anything reached the pod (safe to retry anywhere). */
export function nothingWasSent(error: unknown): boolean {
  return codesOf(error).some((c) => refused.has(c));
}

/** Whether undici refused the request itself: never retried, never the pod's fault. */
export function requestWasUnsendable(error: unknown): boolean {
  return codesOf(error).some((c) => unsendable.has(c) || aborted.has(c));
}
