/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: a proxy must not
 * forward them in either direction. Passing the pod's `connection: keep-alive` to a client that sent
 * `Connection: close` kept its socket open; passing a client's `transfer-encoding` or `expect` to
 * undici makes it refuse the request (which must never count as the pod's failure).
 *
 * Headers are copied into a fresh object rather than deleted in place: on the hot path `delete` (and
 * adding properties to the spread copy reply-from makes) pushed V8 onto slow dictionary objects,
 * about 10 us per request against 0.3 us for one copying pass (profiled; see the README's hot-path notes).
 */
type Headers = Record<string, string | string[] | number | undefined>;

const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);
/** Request headers the gateway answers itself: `expect` (Node sends the 100 Continue). */
const notForwarded = new Set([...hopByHop, 'expect']);
/** ... and the body's framing, when the gateway read the body. */
const notForwardedWithBody = new Set([...notForwarded, 'content-length']);

/** The names a `connection` header lists (lower case), or undefined when it lists none. */
function listedIn(connection: Headers[string]): Set<string> | undefined {
  // What nearly every pod and client sends; both names are hop-by-hop already.
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined;
  const names = new Set<string>();
  for (const name of String(connection).split(',')) {
    const trimmed = name.trim().toLowerCase();
    if (trimmed.length > 0) names.add(trimmed);
  }
  return names.size > 0 ? names : undefined;
}

/** `headers` without the names in `skip` or listed by their `connection` header, as a new object. */
function copyWithout(headers: Headers, skip: ReadonlySet<string>): Headers {
  const listed = listedIn(headers.connection);
  const out: Headers = {};
  for (const name of Object.keys(headers)) {
    if (skip.has(name) || listed?.has(name) || name === '__proto__') continue;
    out[name] = headers[name];
  }
  return out;
}

/** The headers without hop-by-hop ones and without every header the `connection` header names (a new object). */
export function stripHopByHop<H extends Headers>(headers: H): H {
  return copyWithout(headers, hopByHop) as H;
}

/**
 * Request headers as the pod gets them (a new object): hop-by-hop ones removed, `expect` answered by
 * the gateway and dropped, and the framing of the body the gateway read.
 */
export function upstreamRequestHeaders<H extends Headers>(headers: H, bodyLength: number | undefined): H {
  if (bodyLength === undefined) return copyWithout(headers, notForwarded) as H;
  const out = copyWithout(headers, notForwardedWithBody);
  out['content-length'] = String(bodyLength);
  return out as H;
}
