/**
 * Engine.io sessions that a pod opened and that have not upgraded to a websocket yet. A new socket
 * goes to the pod with the fewest sockets and sessions, but a polling handshake used to count
 * nowhere until its websocket upgrade (or its `session_request`) arrived, which under a burst takes
 * seconds: every handshake of the burst saw the same counts and went to the same pod (issue 16:
 * 0 / 1448 / 544 sessions over three pods), whose long polls then queued behind each other. So a
 * handshake counts as a socket of its pod from the moment it is routed: until its open packet fails,
 * until its upgrade arrives (the websocket then counts itself), or for at most `OPENING_MS` (a
 * polling-only session, or one whose upgrade goes through another replica).
 */
import type { Backend } from '../pool/backend.js';

/** How long an opened session that has not upgraded keeps counting on its pod. */
export const OPENING_MS = 30_000;

interface Opening {
  readonly backend: Backend;
  readonly timer: NodeJS.Timeout;
}

/** By the pod's own engine.io sid (random, unique across pods in practice). */
const opening = new Map<string, Opening>();

function expire(podSid: string): void {
  const o = opening.get(podSid);
  if (!o) return;
  opening.delete(podSid);
  o.backend.sockets--;
}

/**
 * A handshake was routed to `backend`: it counts there now. Call the returned function with the
 * pod's sid once the open packet names it (the count then lasts until the upgrade or `OPENING_MS`),
 * or with undefined when the handshake failed or the client left (the count ends at once). Only
 * the first call counts.
 */
export function countOpening(backend: Backend): (podSid: string | undefined) => void {
  backend.sockets++;
  let settled = false;
  return (podSid) => {
    if (settled) return;
    settled = true;
    if (podSid === undefined || opening.has(podSid)) {
      backend.sockets--;
      return;
    }
    opening.set(podSid, { backend, timer: setTimeout(expire, OPENING_MS, podSid).unref() });
  };
}

/** The session's websocket upgrade arrived: it stops counting as opening (the websocket counts itself). */
export function openingUpgraded(podSid: string): void {
  const o = opening.get(podSid);
  if (!o) return;
  clearTimeout(o.timer);
  expire(podSid);
}
