/**
 * Request ids: a caller's `x-request-id` is kept when it is a plausible id (so logs join up across
 * hops), else the gateway makes one. Clients control the header, and the id is echoed in the answer,
 * forwarded to the pod and written to every log line, so it is bounded and restricted to characters
 * that are safe in all three.
 */
import { randomUUID } from 'node:crypto';

const MAX_LENGTH = 128;
const allowed = /^[A-Za-z0-9._:\-/+=]+$/;

/** The caller's id when usable, else undefined. */
export function callerRequestId(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string' || header.length === 0 || header.length > MAX_LENGTH) return undefined;
  return allowed.test(header) ? header : undefined;
}

export function requestIdOf(header: string | string[] | undefined): string {
  return callerRequestId(header) ?? randomUUID();
}
