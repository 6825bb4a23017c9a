/**
 * Maps what went wrong talking to a pod onto the gateway's error codes: refused or unreachable (502
 * UPSTREAM_UNAVAILABLE, nothing was sent), reset or broken mid-request (502 UPSTREAM_FAILED, the pod
 * may have done part of the work), too slow (504 UPSTREAM_TIMEOUT, or DEADLINE_EXCEEDED when the
 * request's own deadline was what cut it short).
 */
import { GatewayError } from '../errors.js';

const refused = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const timeouts = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT']);

function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') codes.push(e.code);
  }
  return codes;
}

export function classifyUpstreamError(error: unknown, deadlinePassed: boolean): GatewayError {
  const codes = codesOf(error);
  if (codes.some((c) => refused.has(c))) return new GatewayError('UPSTREAM_UNAVAILABLE');
  if (codes.some((c) => timeouts.has(c))) return new GatewayError(deadlinePassed ? 'DEADLINE_EXCEEDED' : 'UPSTREAM_TIMEOUT');
  if (codes.includes('FST_REPLY_FROM_BAD_GATEWAY')) return new GatewayError('UPSTREAM_BAD_RESPONSE');
  return new GatewayError('UPSTREAM_FAILED');
}

/** Whether the failure happened before anything reached the pod (safe to retry anywhere). */
export function nothingWasSent(error: unknown): boolean {
  return codesOf(error).some((c) => refused.has(c));
}
