/**
 * Verifies Rasa credentials the way Rasa does, so a cached answer is only ever served to a caller
 * Rasa itself would have answered: the `?token=` query parameter (Rasa's `--auth-token`), or
 * `Authorization: Bearer <JWT>` signed with Rasa's `--jwt-secret` (HMAC algorithms; `exp`/`nbf`
 * honoured; `alg` must be the configured one). Anything the gateway cannot verify goes to a pod,
 * which decides as before.
 *
 * Why `jose`: JWTs come straight from clients, so their parser is attack surface. A hand-written
 * verifier here once threw on a token whose header decoded to JSON `null` and took the process down;
 * jose is a small, zero-dependency, widely audited implementation that rejects every malformed token
 * with a typed error instead. Its verification is asynchronous (WebCrypto), hence the promises.
 */
import { timingSafeEqual } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';

import type { JwtAlgorithm, RasaAuth } from '../config.js';

export type { JwtAlgorithm, RasaAuth } from '../config.js';

/** Longest bearer token looked at: Rasa's are a few hundred bytes; this bounds the work a client can ask for. */
const MAX_JWT_LENGTH = 8192;

const keys = new Map<string, Uint8Array>();

function keyOf(secret: string): Uint8Array {
  let key = keys.get(secret);
  if (!key) {
    key = new TextEncoder().encode(secret);
    keys.set(secret, key);
  }
  return key;
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The `token` query parameter, as Rasa reads it (URLSearchParams never throws on bad encoding). */
export function tokenParam(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}

/** Resolves true only for a well-formed JWT of the configured algorithm, signed with `secret`, in its validity window. */
export async function verifyJwt(jwt: string, secret: string, algorithm: JwtAlgorithm): Promise<boolean> {
  if (jwt.length === 0 || jwt.length > MAX_JWT_LENGTH) return false;
  try {
    await jwtVerify(jwt, keyOf(secret), { algorithms: [algorithm] });
    return true;
  } catch {
    return false;
  }
}

export function signJwt(claims: Record<string, unknown>, secret: string, algorithm: JwtAlgorithm): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: algorithm, typ: 'JWT' }).sign(keyOf(secret));
}

/** The JWT of an `Authorization: Bearer` header, undefined for any other scheme. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined || !authorization.startsWith('Bearer ')) return undefined;
  return authorization.slice(7).trim();
}

/** Whether Rasa would accept this request's credentials; with no auth configured, everyone is. */
export async function callerVerified(url: string, authorization: string | undefined, auth: RasaAuth): Promise<boolean> {
  if (auth.token === undefined && auth.jwtSecret === undefined) return true;
  const token = auth.token === undefined ? undefined : tokenParam(url);
  if (token !== undefined && safeEqual(Buffer.from(token), Buffer.from(auth.token as string))) return true;
  const jwt = auth.jwtSecret === undefined ? undefined : bearerToken(authorization);
  return jwt !== undefined && verifyJwt(jwt, auth.jwtSecret as string, auth.jwtAlgorithm);
}

/** Credentials for the gateway's own `GET /status` calls. */
export async function statusRequestAuth(auth: RasaAuth): Promise<{ query: string; headers: Record<string, string> }> {
  if (auth.token !== undefined) return { query: `?token=${encodeURIComponent(auth.token)}`, headers: {} };
  if (auth.jwtSecret !== undefined) {
    const claims = { user: { username: 'rasa-gateway', role: 'admin' }, exp: Math.floor(Date.now() / 1000) + 300 };
    return { query: '', headers: { authorization: `Bearer ${await signJwt(claims, auth.jwtSecret, auth.jwtAlgorithm)}` } };
  }
  return { query: '', headers: {} };
}
