/**
 * When a failed attempt may go to another pod (shared rasa.md, issue: retries only where safe):
 * - refused / unreachable (nothing was sent): any route, since the pod never saw the request;
 * - reset before any response byte, or a 502/503 from the pod: only idempotent routes
 *   (`/model/parse`, `/model/predict`, GETs, `/conversations/{id}/predict`);
 * - never a timeout (the pod may still be working), never twice, never past the deadline, never
 *   beyond the pool's retry budget, and only when the body can be replayed (it was read up front).
 * A conversation's request stays with its pod unless that pod has left or was ejected.
 */
import { nothingWasSent, requestWasUnsendable } from '../pool/upstream-failure.js';

export type RetryReason = 'refused' | 'reset' | 'status_502' | 'status_503';

const resetCodes = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE', 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR']);

export function retryReasonForError(error: unknown, idempotent: boolean): RetryReason | undefined {
  // A request undici would not send fails the same way on every pod: retrying it only spreads the blame.
  if (requestWasUnsendable(error)) return undefined;
  if (nothingWasSent(error)) return 'refused';
  if (!idempotent) return undefined;
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && e.code.includes('TIMEOUT')) return undefined;
    if (typeof e.code === 'string' && resetCodes.has(e.code)) return 'reset';
  }
  return undefined;
}

export function retryReasonForStatus(status: number, idempotent: boolean): RetryReason | undefined {
  if (!idempotent) return undefined;
  return status === 502 ? 'status_502' : status === 503 ? 'status_503' : undefined;
}
