/**
 * Checks on what a client names before anything else looks at it: the request target and the
 * websocket handshake. Each refusal here is the client's fault (400 BAD_REQUEST from the catalog),
 * costs no slot and never reaches a pod.
 * - HTTP/1.1 servers must accept the absolute-form (`GET http://host/path`, RFC 9112 §3.2.2); a
 *   reverse proxy routes it by its path alone and never by the authority the client named, so the
 *   target is reduced to origin-form before routing (fastify's `rewriteUrl`).
 * - A path must be origin-form, decodable, and must not climb out of its root (`..` segments), as
 *   reply-from would refuse it later with an error of its own.
 * - A websocket upgrade must carry a valid key and version (RFC 6455 §4.2.1), else the ws library
 *   answers with an HTML page of its own, outside the catalog.
 */
import type { IncomingHttpHeaders } from 'node:http';

const absoluteForm = /^https?:\/\/[^/?#]*/i;
const websocketKey = /^[+/0-9A-Za-z]{22}==$/;

export function originForm(target: string): string {
  const c = target.charCodeAt(0);
  if (c === 47 /* / */ || (c !== 104 && c !== 72) /* not h or H */) return target;
  const m = absoluteForm.exec(target);
  if (!m) return target;
  const rest = target.slice(m[0].length);
  return rest.length === 0 || rest.charCodeAt(0) !== 47 ? `/${rest}` : rest;
}

/** Why a path (without its query) is refused, or undefined when it is fine. */
export function pathProblem(path: string): string | undefined {
  if (path.charCodeAt(0) !== 47 /* / */) return 'the request target is not an origin-form path';
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return 'the request path has invalid percent-encoding';
  }
  if (decoded.includes('/..') || decoded.includes('../')) return 'the request path climbs out of its root';
  return undefined;
}

/**
 * Why an upgrade is refused, or undefined when it is well-formed. `upgrading` is Node's verdict that
 * the connection asks to switch protocols (`Connection: upgrade`); an `Upgrade` header without it is
 * an offer a server may ignore (RFC 9110 §7.8), and the proxy drops it as hop-by-hop.
 */
export function upgradeProblem(upgrading: boolean, headers: IncomingHttpHeaders): string | undefined {
  if (!upgrading) return undefined;
  if (headers.upgrade?.toLowerCase() !== 'websocket') return 'only websocket upgrades are proxied';
  const key = headers['sec-websocket-key'];
  if (typeof key !== 'string' || !websocketKey.test(key)) return 'the websocket handshake has no valid Sec-WebSocket-Key';
  const version = headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') return 'the websocket handshake has no supported Sec-WebSocket-Version (13)';
  return undefined;
}
