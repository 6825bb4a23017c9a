/** Reads a request body into memory up to a limit, for routes whose conversation key is in the body. */
import { GatewayError } from '../errors.js';

export function readBodyLimited(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        stream.resume();
        reject(new GatewayError('BODY_TOO_LARGE', `the request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

/**
 * The REST channel's `sender` as Rasa's conversation id: Rasa takes `str(sender)`, or "default" when it
 * is missing or null. Strings, numbers and booleans map as Rasa does (numbers as JS prints them); an
 * object or array sender gets "default" (one fixed key still keeps those conversations on one pod).
 * Unkeyed when the body is not JSON or not a JSON object.
 */
export function senderOf(body: Buffer): { key: string } | { unkeyed: 'invalid_json' | 'not_an_object' } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { unkeyed: 'invalid_json' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { unkeyed: 'not_an_object' };
  const sender = (parsed as { sender?: unknown }).sender;
  if (typeof sender === 'string' || typeof sender === 'number') return { key: String(sender) };
  // Rasa's str(True) is "True": keying a boolean sender as "default" split it from its conversation.
  if (typeof sender === 'boolean') return { key: sender ? 'True' : 'False' };
  return { key: 'default' };
}

/**
 * The request body: the raw stream http-proxy's parser hands over (a string or Buffer when something
 * upstream of us read it already); undefined when the request has none.
 */
export function bodyOf(body: unknown, limit: number): Promise<Buffer> | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return checkSize(Buffer.from(body), limit);
  if (Buffer.isBuffer(body)) return checkSize(body, limit);
  if (typeof (body as NodeJS.ReadableStream).on !== 'function') return undefined;
  return readBodyLimited(body as NodeJS.ReadableStream, limit);
}

function checkSize(body: Buffer, limit: number): Promise<Buffer> {
  return body.length > limit ? Promise.reject(new GatewayError('BODY_TOO_LARGE', `the request body exceeds ${limit} bytes`)) : Promise.resolve(body);
}

/** What a failed body read is answered with: its own gateway error, else the client's fault. */
export function bodyError(err: unknown): GatewayError {
  return err instanceof GatewayError ? err : new GatewayError('BAD_REQUEST', 'the request body could not be read');
}
