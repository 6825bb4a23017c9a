/**
 * Property-based fuzzing (fast-check, seeded and bounded) of the client-facing checks the gateway
 * makes before anything else: credentials (bearer JWTs, `?token=`), request ids, request targets,
 * websocket handshakes and hop-by-hop headers. fast-check because hand-picked cases only find what
 * their author thought of; generated inputs of every shape, shrunk to the smallest failing one, find
 * the rest. Each property: never throws, and gives the documented result.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { bearerToken, callerVerified, signJwt, tokenParam, verifyJwt, type RasaAuth } from '../src/cache/rasa-auth.js';
import { codeForStatus, errorCatalog, rawErrorResponse, GatewayError } from '../src/errors.js';
import { stripHopByHop, upstreamRequestHeaders } from '../src/proxy/hop-by-hop.js';
import { originForm, pathProblem, upgradeProblem } from '../src/proxy/request-checks.js';
import { callerRequestId, requestIdOf } from '../src/proxy/request-id.js';

const SECRET = 'fuzz-secret';
const params = (seed: number, numRuns = 300) => ({ seed, numRuns });
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** Any string a client could put in a header or a target: unicode, control bytes, separators. */
const anyText = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('', '.', '..', '%', '%zz', '%E0%A4%A', '\u0000', 'Bearer ', 'Bearer  '));

/** JWT-shaped strings whose parts decode to any JSON (null, arrays, numbers, objects with odd `alg`s). */
const jwtShaped = fc
  .tuple(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 60 }))
  .map(([header, payload, signature]) => `${b64(JSON.stringify(header) ?? 'null')}.${b64(JSON.stringify(payload) ?? 'null')}.${signature}`);

const reservedClaims = new Set(['exp', 'nbf', 'iat', 'iss', 'aud', 'sub', 'jti', '__proto__']);
const claims = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !reservedClaims.has(k)),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 5 },
);

test('verifyJwt never throws and accepts nothing it did not sign', async () => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(anyText, jwtShaped), fc.constantFrom('HS256', 'HS384', 'HS512' as const), async (jwt, alg) => {
      assert.equal(await verifyJwt(jwt, SECRET, alg), false);
    }),
    params(1501),
  );
});

test('a token it signed verifies, and any change to it does not', async () => {
  await fc.assert(
    fc.asyncProperty(claims, fc.constantFrom('HS256', 'HS384', 'HS512' as const), fc.nat(), fc.integer({ min: 1, max: 25 }), async (body, alg, at, shift) => {
      const jwt = await signJwt(body as Record<string, unknown>, SECRET, alg);
      assert.equal(await verifyJwt(jwt, SECRET, alg), true, 'its own token');
      assert.equal(await verifyJwt(jwt, `${SECRET}x`, alg), false, 'another secret');
      const i = at % jwt.length;
      const c = jwt.charCodeAt(i);
      const tampered = `${jwt.slice(0, i)}${String.fromCharCode(c === 46 ? 97 : ((c - 32 + shift) % 95) + 32)}${jwt.slice(i + 1)}`;
      // base64url has padding-free aliases only in the last char's low bits: those may still decode equal.
      if (tampered !== jwt && i !== jwt.length - 1 && jwt.charCodeAt(i) !== 46) {
        assert.equal(await verifyJwt(tampered, SECRET, alg), false, `tampered at ${i}`);
      }
    }),
    params(1502, 150),
  );
});

test('callerVerified never throws, and a matching ?token= always passes', async () => {
  const auth: RasaAuth = { token: 'tok&en=1 é', jwtSecret: SECRET, jwtAlgorithm: 'HS256' };
  await fc.assert(
    fc.asyncProperty(anyText, fc.option(fc.oneof(anyText, jwtShaped.map((j) => `Bearer ${j}`)), { nil: undefined }), async (url, authorization) => {
      const verdict = await callerVerified(url, authorization, auth);
      assert.equal(typeof verdict, 'boolean');
      assert.equal(tokenParam(url) === auth.token ? verdict : true, true);
      assert.equal(await callerVerified(`/model/parse?${new URLSearchParams({ q: url, token: auth.token as string })}`, authorization, auth), true);
    }),
    params(1503),
  );
  assert.equal(bearerToken('Basic abc'), undefined);
  assert.equal(bearerToken('Bearer  abc '), 'abc');
});

const idAlphabet = /^[A-Za-z0-9._:\-/+=]{1,128}$/;

test('request ids: a plausible caller id is kept, anything else is replaced by a fresh one', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, fc.stringMatching(idAlphabet), fc.array(fc.string(), { maxLength: 3 })), (header) => {
      const kept = callerRequestId(header);
      if (kept !== undefined) {
        assert.equal(kept, header);
        assert.match(kept, idAlphabet);
      }
      const id = requestIdOf(header);
      assert.ok(id === kept || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id));
      assert.ok(id.length <= 128);
    }),
    params(1504, 500),
  );
});

const segment = fc.stringMatching(/^[A-Za-z0-9_~!$&'()*+,;=:@-]{1,12}$/).filter((s) => s !== '..' && s !== '.');
const safePath = fc.array(segment, { minLength: 0, maxLength: 6 }).map((parts) => `/${parts.join('/')}`);

test('request targets: absolute-form becomes its path, origin-form is untouched, nothing throws', () => {
  fc.assert(
    fc.property(anyText, fc.constantFrom('http', 'HTTP', 'https'), fc.domain(), safePath, fc.string({ maxLength: 20 }), (noise, scheme, host, path, query) => {
      assert.equal(typeof originForm(noise), 'string');
      const target = `${path}?${query}`;
      assert.equal(originForm(target), target);
      assert.equal(originForm(`${scheme}://${host}${target}`), target);
      assert.equal(originForm(`${scheme}://${host}`), '/');
      assert.equal(originForm(`${scheme}://${host}?${query}`), `/?${query}`);
    }),
    params(1505),
  );
});

test('paths: safe ones pass, undecodable or climbing ones are refused, nothing throws', () => {
  fc.assert(
    fc.property(anyText, safePath, fc.nat({ max: 6 }), (noise, path, at) => {
      const verdict = pathProblem(noise);
      assert.ok(verdict === undefined || typeof verdict === 'string');
      assert.equal(pathProblem(path), undefined, path);
      assert.equal(pathProblem(encodeURI(path)), undefined);
      const parts = path.split('/');
      parts.splice(Math.min(at, parts.length - 1) + 1, 0, fc.sample(fc.constantFrom('..', '%2e%2e', '.%2E'), { seed: at, numRuns: 1 })[0] as string);
      assert.notEqual(pathProblem(parts.join('/')), undefined, parts.join('/'));
      assert.notEqual(pathProblem(`${path}/%E0%A4%A`), undefined);
    }),
    params(1506),
  );
});

test('websocket handshakes: a valid key and version pass, anything else on an upgrade is refused', () => {
  const header = fc.option(anyText, { nil: undefined });
  fc.assert(
    fc.property(header, header, header, fc.boolean(), (upgrade, key, version, upgrading) => {
      const headers = { upgrade, 'sec-websocket-key': key, 'sec-websocket-version': version };
      const verdict = upgradeProblem(upgrading, 'GET', headers);
      if (!upgrading) assert.equal(verdict, undefined, 'not an upgrade: nothing to check');
      else assert.notEqual(verdict, undefined, 'random headers are no valid handshake');
      const good = { upgrade: 'WebSocket', 'sec-websocket-key': randomBytes(16).toString('base64'), 'sec-websocket-version': '13' };
      assert.equal(upgradeProblem(true, 'GET', good), undefined);
      assert.equal(upgradeProblem(true, 'GET', { ...good, 'sec-websocket-protocol': 'chat, superchat' }), undefined);
      assert.equal(upgradeProblem(true, 'POST', good)?.code, 'METHOD_NOT_ALLOWED');
    }),
    params(1507),
  );
});

const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'];

test('hop-by-hop headers, and every header the Connection header names, never pass; the rest pass unchanged', () => {
  const name = fc.oneof(fc.constantFrom(...hopByHop, 'x-a', 'x-b', 'content-type', 'expect'), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/));
  fc.assert(
    fc.property(fc.dictionary(name, fc.string({ maxLength: 20 }), { maxKeys: 10 }), fc.array(name, { maxLength: 4 }), fc.option(fc.nat(), { nil: undefined }), (headers, listed, bodyLength) => {
      const input: Record<string, string | undefined> = { ...headers, connection: listed.join(', ') };
      const out = upstreamRequestHeaders({ ...input }, bodyLength);
      for (const h of [...hopByHop, ...listed, 'expect']) if (h !== 'content-length') assert.equal(out[h], undefined, h);
      for (const [k, v] of Object.entries(input)) {
        if (![...hopByHop, ...listed, 'expect', 'content-length'].includes(k)) assert.equal(out[k], v, `${k} kept`);
      }
      if (bodyLength !== undefined) assert.equal(out['content-length'], String(bodyLength));
      assert.deepEqual(Object.keys(stripHopByHop({ 'x-keep': '1' })), ['x-keep']);
    }),
    params(1508),
  );
});

test('every status a library may choose maps to a catalog code whose own status is used', () => {
  fc.assert(
    fc.property(fc.integer({ min: 100, max: 999 }), (status) => {
      const code = codeForStatus(status);
      assert.ok(code in errorCatalog);
      const raw = rawErrorResponse(new GatewayError(code));
      assert.match(raw, new RegExp(`^HTTP/1\\.1 ${errorCatalog[code].status} `));
      const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      assert.equal(Buffer.byteLength(body), Number(/content-length: (\d+)/.exec(raw)?.[1]));
      assert.equal(JSON.parse(body).error.code, code);
    }),
    params(1509, 200),
  );
});
