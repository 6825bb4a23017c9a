/**
 * Cross-replica stickiness for socket.io without a shared store. The engine.io handshake answers
 * `0{"sid":"..."}`, and every later poll, POST and websocket upgrade carries `sid=` in its query. The
 * sid says nothing about the pod, so a replica that did not see the handshake could not route it. The
 * gateway therefore prefixes the sid in the open packet with a token of the pod (a hash of its
 * address) and strips it from later requests: any replica decodes the pod from the sid itself.
 * Clients treat the sid as opaque, so they echo the longer value unchanged.
 */
import type { Backend } from '../pool/backend.js';

const TOKEN_LENGTH = 8;

export function podToken(backend: Backend): string {
  return backend.hash.toString(16).padStart(TOKEN_LENGTH, '0');
}

/** Splits a gateway sid into pod token and the pod's own sid; undefined when it has no token. */
export function splitSid(sid: string): { token: string; sid: string } | undefined {
  if (sid.length <= TOKEN_LENGTH + 1 || sid.charCodeAt(TOKEN_LENGTH) !== 46 /* . */) return undefined;
  const token = sid.slice(0, TOKEN_LENGTH);
  return /^[0-9a-f]+$/.test(token) ? { token, sid: sid.slice(TOKEN_LENGTH + 1) } : undefined;
}

/** The `sid` query parameter of a request target, undefined when absent. */
export function sidOf(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  for (const part of url.slice(q + 1).split('&')) {
    if (part.startsWith('sid=')) {
      try {
        return decodeURIComponent(part.slice(4));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The request target with the gateway's token removed from its sid (the parameter `sidOf` reads). */
export function stripSidToken(url: string, gatewaySid: string, podSid: string): string {
  // Rewrites the parameter sidOf decoded: a text replace() missed other encodings (%2E), hit `xsid=` first and expanded `$&`-patterns.
  const q = url.indexOf('?');
  if (q === -1) return url;
  const parts = url.slice(q + 1).split('&');
  const i = parts.findIndex((part) => part.startsWith('sid='));
  if (i === -1 || sidOf(`?${parts[i]}`) !== gatewaySid) return url;
  parts[i] = `sid=${encodeURIComponent(podSid)}`;
  return url.slice(0, q + 1) + parts.join('&');
}

/** The first packet of a polling payload when it is an engine.io open packet with a string sid. */
function openPacket(body: string): { open: { sid: string }; end: number } | undefined {
  if (!body.startsWith('0{')) return undefined;
  const end = body.indexOf('\x1e');
  const packet = end === -1 ? body : body.slice(0, end);
  let open: { sid?: unknown };
  try {
    open = JSON.parse(packet.slice(1)) as { sid?: unknown };
  } catch {
    return undefined;
  }
  return typeof open.sid === 'string' ? { open: open as { sid: string }, end } : undefined;
}

/** The pod's own sid in an engine.io open packet; undefined when it is not one. */
export function openPacketSid(body: string): string | undefined {
  return openPacket(body)?.open.sid;
}

/**
 * Rewrites an engine.io v4 polling open packet (`0{...}`, possibly followed by more packets
 * separated by \x1e) so its sid carries the pod token. Returns undefined when it is not an open packet.
 */
export function tokeniseOpenPacket(body: string, backend: Backend): string | undefined {
  const parsed = openPacket(body);
  if (!parsed) return undefined;
  const { open, end } = parsed;
  open.sid = `${podToken(backend)}.${open.sid}`;
  return `0${JSON.stringify(open)}${end === -1 ? '' : body.slice(end)}`;
}
