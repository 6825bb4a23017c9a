/**
 * Checks on what a client names before anything else looks at it: the protocol version, the request
 * target and the websocket handshake. Each refusal here is the client's fault (400 BAD_REQUEST from
 * the catalog), costs no slot and never reaches a pod.
 * - HTTP/1.1 servers must accept the absolute-form (`GET http://host/path`, RFC 9112 §3.2.2); a
 *   reverse proxy routes it by its path alone and never by the authority the client named, so the
 *   target is reduced to origin-form before routing (fastify's `rewriteUrl`).
 * - A path must be origin-form, decodable, and must not climb out of its root (`..` segments), as
 *   reply-from would refuse it later with an error of its own.
 * - A websocket upgrade must carry a valid key and version (RFC 6455 §4.2.1), else the ws library
 *   answers with an HTML page of its own, outside the catalog.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../errors.js';

const absoluteForm = /^https?:\/\/[^/?#]*/i;
const websocketKey = /^[+/0-9A-Za-z]{22}==$/;
/** A comma-separated list of RFC 7230 tokens (RFC 6455 §4.1 subprotocols). */
const subprotocols = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\s*,\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/;

export function originForm(target: string): string {
  const c = target.charCodeAt(0);
  if (c === 47 /* / */ || (c !== 104 && c !== 72) /* not h or H */) return target;
  const m = absoluteForm.exec(target);
  if (!m) return target;
  const rest = target.slice(m[0].length);
  return rest.length === 0 || rest.charCodeAt(0) !== 47 ? `/${rest}` : rest;
}

/**
 * Why a request is refused before routing (a 400 BAD_REQUEST, or 405 for an upgrade that is not a
 * GET), or undefined when it is fine. `path` is the target without its query.
 */
export function requestProblem(request: RequestLine): GatewayError | undefined {
  const problem = versionProblem(request) ?? pathProblem(request.path);
  if (problem !== undefined) return new GatewayError('BAD_REQUEST', problem);
  return upgradeProblem(request.upgrading, request.method, request.headers);
}

export interface RequestLine {
  readonly method: string;
  readonly path: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly headers: IncomingHttpHeaders;
  /** Node's verdict that the connection asks to switch protocols (`Connection: upgrade`). */
  readonly upgrading: boolean;
}

/** HTTP/1.0 and 1.1 only (Node's parser also lets `HTTP/0.9`-style and `HTTP/2.0` request lines through); 1.1 needs a Host. */
function versionProblem(request: RequestLine): string | undefined {
  if (request.httpVersionMajor !== 1 || request.httpVersionMinor > 1) return 'only HTTP/1.0 and HTTP/1.1 requests are served';
  if (request.httpVersionMinor === 1 && request.headers.host === undefined) return 'an HTTP/1.1 request needs a Host header';
  return undefined;
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
 * Why an upgrade is refused, or undefined when it is well-formed. An `Upgrade` header without
 * `Connection: upgrade` (`upgrading` false) is an offer a server may ignore (RFC 9110 §7.8), and the
 * proxy drops it as hop-by-hop.
 */
export function upgradeProblem(upgrading: boolean, method: string, headers: IncomingHttpHeaders): GatewayError | undefined {
  if (!upgrading) return undefined;
  if (headers.upgrade?.toLowerCase() !== 'websocket') return new GatewayError('BAD_REQUEST', 'only websocket upgrades are proxied');
  if (method !== 'GET') return new GatewayError('METHOD_NOT_ALLOWED', 'a websocket handshake is a GET');
  const key = headers['sec-websocket-key'];
  if (typeof key !== 'string' || !websocketKey.test(key)) return new GatewayError('BAD_REQUEST', 'the websocket handshake has no valid Sec-WebSocket-Key');
  const version = headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') return new GatewayError('BAD_REQUEST', 'the websocket handshake has no supported Sec-WebSocket-Version (13)');
  const protocols = headers['sec-websocket-protocol'];
  if (protocols !== undefined && !subprotocols.test(protocols)) return new GatewayError('BAD_REQUEST', 'the websocket handshake has an invalid Sec-WebSocket-Protocol');
  return undefined;
}
