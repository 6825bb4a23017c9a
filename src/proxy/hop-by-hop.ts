/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: a proxy must not
 * forward them in either direction. Passing the pod's `connection: keep-alive` to a client that sent
 * `Connection: close` kept its socket open; passing a client's `transfer-encoding` or `expect` to
 * undici makes it refuse the request (which must never count as the pod's failure). reply-from
 * already drops the client's `connection` header and the names it lists; this covers the rest.
 */
type Headers = Record<string, string | string[] | number | undefined>;

const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'];

/** Removes hop-by-hop headers and every header the `connection` header names; mutates and returns `headers`. */
export function stripHopByHop<H extends Headers>(headers: H): H {
  const listed = headers.connection;
  if (listed !== undefined) {
    for (const name of String(listed).split(',')) {
      const trimmed = name.trim().toLowerCase();
      if (trimmed.length > 0) delete headers[trimmed];
    }
  }
  for (const name of hopByHop) delete headers[name];
  return headers;
}

/**
 * Request headers as the pod gets them: hop-by-hop ones removed, `expect` answered by the gateway
 * (Node sends the 100 Continue itself) and dropped, and the framing of the body the gateway read.
 */
export function upstreamRequestHeaders<H extends Headers>(headers: H, bodyLength: number | undefined): H {
  stripHopByHop(headers);
  delete headers.expect;
  if (bodyLength !== undefined) (headers as Headers)['content-length'] = String(bodyLength);
  return headers;
}
