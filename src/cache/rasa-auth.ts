/**
 * Verifies Rasa credentials the way Rasa does, so a cached answer is only ever served to a caller
 * Rasa itself would have answered: the `?token=` query parameter (Rasa's `--auth-token`), or
 * `Authorization: Bearer <JWT>` signed with Rasa's `--jwt-secret` (HMAC algorithms; `exp`/`nbf`
 * honoured). Anything the gateway cannot verify goes to a pod, which decides as before.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512';

export interface RasaAuth {
  readonly token?: string;
  readonly jwtSecret?: string;
  readonly jwtAlgorithm: JwtAlgorithm;
}

const hashOf: Record<JwtAlgorithm, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function tokenParam(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}

export function verifyJwt(jwt: string, secret: string, algorithm: JwtAlgorithm, nowSeconds = Date.now() / 1000): boolean {
  const parts = jwt.split('.');
  if (parts.length !== 3) return false;
  const [header, payload, signature] = parts as [string, string, string];
  let head: { alg?: unknown };
  let claims: { exp?: unknown; nbf?: unknown };
  try {
    head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof head;
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return false;
  }
  if (head.alg !== algorithm) return false;
  const expected = createHmac(hashOf[algorithm], secret).update(`${header}.${payload}`).digest();
  if (!safeEqual(expected, Buffer.from(signature, 'base64url'))) return false;
  if (typeof claims.exp === 'number' && nowSeconds >= claims.exp) return false;
  if (typeof claims.nbf === 'number' && nowSeconds < claims.nbf) return false;
  return true;
}

export function signJwt(claims: object, secret: string, algorithm: JwtAlgorithm): string {
  const header = Buffer.from(JSON.stringify({ alg: algorithm, typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = createHmac(hashOf[algorithm], secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** Whether Rasa would accept this request's credentials; with no auth configured, everyone is. */
export function callerVerified(url: string, authorization: string | undefined, auth: RasaAuth): boolean {
  if (auth.token === undefined && auth.jwtSecret === undefined) return true;
  const token = tokenParam(url);
  if (token !== undefined && auth.token !== undefined && safeEqual(Buffer.from(token), Buffer.from(auth.token))) return true;
  if (authorization?.startsWith('Bearer ') && auth.jwtSecret !== undefined) {
    return verifyJwt(authorization.slice(7).trim(), auth.jwtSecret, auth.jwtAlgorithm);
  }
  return false;
}

/** Credentials for the gateway's own `GET /status` calls. */
export function statusRequestAuth(auth: RasaAuth): { query: string; headers: Record<string, string> } {
  if (auth.token !== undefined) return { query: `?token=${encodeURIComponent(auth.token)}`, headers: {} };
  if (auth.jwtSecret !== undefined) {
    const jwt = signJwt({ user: { username: 'rasa-gateway', role: 'admin' }, exp: Math.floor(Date.now() / 1000) + 300 }, auth.jwtSecret, auth.jwtAlgorithm);
    return { query: '', headers: { authorization: `Bearer ${jwt}` } };
  }
  return { query: '', headers: {} };
}
