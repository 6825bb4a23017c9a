/**
 * Hostile HTTP/1.x requests for the soak, drawn from a seeded PRNG (the same sequence in every run of
 * a seed), each a raw-socket exchange (raw-http.ts) bounded in time. Kinds: garbage request lines,
 * bad percent-encoding, absolute-form / `*` / authority-form targets, `Expect: 100-continue`, huge and
 * duplicated headers, invalid UTF-8 in bodies, deeply nested JSON within the body limit, webhook
 * bodies whose `sender` is every JSON type, garbage `Authorization: Bearer` JWTs (`bnVsbA.e30.x`:
 * a header that decodes to JSON null), forged socket.io sids, websocket upgrades with bad keys,
 * HTTP/1.0 and `Connection: close`, abandoned uploads. Every target is the gateway on 127.0.0.1.
 */
import { createHmac } from 'node:crypto';
import type { RawRequest, RawStep } from './raw-http.js';

export interface FuzzTarget {
  /** host:port for the Host header. */
  readonly authority: string;
  /** The pool's Rasa credentials, so some requests pass the first checks and reach deeper code. */
  readonly token: string;
  readonly jwtSecret: string;
  /** A real socket.io pod token (from a handshake), so forged sids reach the pod; undefined until known. */
  readonly podToken: string | undefined;
  /** Bytes a body may have before the gateway answers 413. */
  readonly bodyLimit: number;
}

export interface FuzzCase {
  /** Which variant of the kind (for the report's examples). */
  readonly variant: string;
  readonly request: RawRequest;
}

export interface FuzzKind {
  readonly id: string;
  readonly label: string;
  make(random: () => number, target: FuzzTarget): FuzzCase;
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const int = (random: () => number, lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');

/** Random bytes; `printable` keeps them to visible ASCII (still no valid request). */
function junk(random: () => number, n: number, printable = false): Buffer {
  return Buffer.from(Array.from({ length: n }, () => (printable ? int(random, 0x21, 0x7e) : int(random, 0, 255))));
}

type Headers = readonly (readonly [string, string])[];

/** A request head (and body) as bytes; a string body is UTF-8, a Buffer is sent as is. */
function message(method: string, target: string, headers: Headers, body?: string | Buffer, version = 'HTTP/1.1'): Buffer {
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const all = bytes === undefined || headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k)) ? headers : [...headers, ['Content-Length', String(bytes.length)] as const];
  const head = `${method} ${target} ${version}\r\n${all.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return bytes === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
}

const json: Headers = [['Content-Type', 'application/json']];
const host = (t: FuzzTarget): Headers => [['Host', t.authority]];
const once = (variant: string, ...steps: RawStep[]): FuzzCase => ({ variant, request: { steps } });
const post = (t: FuzzTarget, path: string, body: string | Buffer, headers: Headers = []) => message('POST', path, [...host(t), ...json, ...headers], body);

/** An HMAC JWT over any header and payload text (valid signature), as jose or Rasa would check it. */
function signedJwt(header: string, payload: string, secret: string): string {
  const h = b64(header);
  const p = b64(payload);
  return `${h}.${p}.${createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')}`;
}

/** Garbage Bearer tokens: JSON null / array / number / string headers, bad base64, no parts, valid-signed null payloads. */
function garbageJwt(random: () => number, t: FuzzTarget): string {
  const variants: (() => string)[] = [
    () => 'bnVsbA.e30.x', // header `null`
    () => 'e30.bnVsbA.x',
    () => 'bnVsbA.bnVsbA.bnVsbA',
    () => `${b64('[]')}.${b64('{}')}.x`,
    () => `${b64('1')}.${b64('2')}.${b64('3')}`,
    () => `${b64('"HS256"')}.e30.x`,
    () => `${b64('{"alg":"none"}')}.${b64('{"user":{"role":"admin"}}')}.`,
    () => `${b64('{"alg":"HS256"}')}.${b64('{"exp":"soon"}')}.${junk(random, 43, true).toString('latin1')}`,
    () => signedJwt('{"alg":"HS256","typ":"JWT"}', 'null', t.jwtSecret), // a valid signature over a null payload
    () => signedJwt('{"alg":"HS256"}', '{"exp":null,"nbf":[]}', t.jwtSecret),
    () => signedJwt('{"alg":"HS256"}', '[1,2,3]', t.jwtSecret),
    () => '..',
    () => 'a.b',
    () => 'a.b.c.d',
    () => '',
    () => `${'A'.repeat(int(random, 100, 6000))}.e30.x`,
    () => `${junk(random, 20, true).toString('latin1')}.${junk(random, 20, true).toString('latin1')}.${junk(random, 20, true).toString('latin1')}`,
    () => `%%%.${b64('\u0000')}.\u00ff`,
  ];
  return pick(random, variants)();
}

const senders: readonly string[] = ['null', 'true', 'false', '0', '-1', '1.5', '1e308', '""', '[]', '[1,"a"]', '{}', '{"id":"x"}', `"${'s'.repeat(2000)}"`, '"\\u0000"', '"\\ud800"', '"conv-1"'];

function nested(random: () => number, limit: number): string {
  const depth = int(random, 1000, Math.floor((limit - 200) / 2));
  return pick(random, [() => `${'['.repeat(depth)}${']'.repeat(depth)}`, () => `${'{"a":'.repeat(Math.floor(depth / 3))}1${'}'.repeat(Math.floor(depth / 3))}`])();
}

export const fuzzKinds: readonly FuzzKind[] = [
  {
    id: 'garbage-line',
    label: 'garbage request lines (binary, printable junk, bad methods and versions)',
    make: (random, t) => {
      const variants: (() => FuzzCase)[] = [
        () => once('binary', junk(random, int(random, 1, 300)), '\r\n\r\n'),
        () => once('printable', junk(random, int(random, 1, 300), true), '\r\n\r\n'),
        () => once('bad version', `GET /model/parse HTTP/${int(random, 0, 9)}.${int(random, 2, 9)}\r\nHost: ${t.authority}\r\n\r\n`),
        () => once('no version', 'GET /webhooks/rest/webhook\r\n\r\n'),
        () => once('bad method', `${junk(random, int(random, 1, 40), true).toString('latin1')} / HTTP/1.1\r\nHost: ${t.authority}\r\n\r\n`),
        () => once('bare LF', `GET /model/parse HTTP/1.1\nHost: ${t.authority}\n\n`),
        () => once('spaces', `GET  /model/parse  HTTP/1.1 \r\n Host: ${t.authority}\r\n\r\n`),
        () => once('NUL in line', `GET /model\u0000/parse HTTP/1.1\r\nHost: ${t.authority}\r\n\r\n`),
        () => once('header without colon', `GET /model/parse HTTP/1.1\r\nHost ${t.authority}\r\n\r\n`),
      ];
      return pick(random, variants)();
    },
  },
  {
    id: 'bad-percent',
    label: 'bad percent-encoding in paths and queries',
    make: (random, t) => {
      const target = pick(random, [
        '/webhooks/rest/%zz',
        '/model/parse%',
        '/model/%E0%A4%A',
        '/model/parse?token=%',
        `/model/parse?token=${t.token}%ff`,
        '/conversations/%C0%AF/tracker',
        '/conversations/%00/tracker',
        '/webhooks/%2e%2e/%2e%2e/status',
        '/socket.io/?EIO=4&transport=polling&sid=%ff%fe',
        '/socket.io/?EIO=4&transport=polling&sid=%',
        `/%${junk(random, 2, true).toString('latin1')}`,
      ]);
      const method = pick(random, ['GET', 'POST']);
      return once(`${method} ${target}`, method === 'GET' ? message('GET', target, host(t)) : post(t, target, '{"text":"hi","sender":"x","message":"hi"}'));
    },
  },
  {
    id: 'target-form',
    label: 'absolute-form, authority-form and `*` targets',
    make: (random, t) => {
      const [method, target, body] = pick(random, [
        ['POST', `http://${t.authority}/model/parse`, '{"text":"hi"}'],
        ['POST', `http://${t.authority}/webhooks/rest/webhook`, '{"sender":"conv-1","message":"hi"}'],
        ['GET', 'http://127.0.0.1:1/status', undefined],
        ['GET', `https://${t.authority}/conversations/x/tracker`, undefined],
        ['OPTIONS', '*', undefined],
        ['GET', '*', undefined],
        ['POST', '*', '{"text":"hi"}'],
        ['CONNECT', t.authority, undefined],
        ['GET', 'model/parse', undefined],
      ] as const);
      return once(`${method} ${target}`, message(method, target, host(t), body));
    },
  },
  {
    id: 'expect-continue',
    label: '`Expect: 100-continue` POSTs (body after the 100 or after 1 s), and unknown expectations',
    make: (random, t) => {
      const [path, body] = pick(random, [
        ['/model/parse', '{"text":"hi","message_id":"e"}'],
        ['/webhooks/rest/webhook', `{"sender":"conv-${int(random, 0, 99)}","message":"hi"}`],
        ['/model/parse', 'x'.repeat(t.bodyLimit + 1000)],
      ] as const);
      if (random() < 0.2) return once('Expect: 42-weird', post(t, path, body, [['Expect', '42-weird']]));
      const head = message('POST', path, [...host(t), ...json, ['Expect', '100-continue'], ['Content-Length', String(Buffer.byteLength(body))]]);
      return once(`100-continue ${path} ${body.length} B`, head, { awaitContinueMs: 1000 }, body);
    },
  },
  {
    id: 'huge-headers',
    label: 'huge, many and duplicated headers (Content-Length, Host, Transfer-Encoding, Authorization)',
    make: (random, t) => {
      const body = '{"text":"hi"}';
      const variants: (() => FuzzCase)[] = [
        () => once('one 20-60 KiB header', message('GET', '/model/parse', [...host(t), ['X-Big', 'a'.repeat(int(random, 20_000, 60_000))]])),
        () => once('500 headers', message('GET', '/webhooks/rest/webhook', [...host(t), ...Array.from({ length: 500 }, (_, i) => [`X-H${i}`, 'v'] as const)])),
        () => once('two Content-Lengths', message('POST', '/model/parse', [...host(t), ...json, ['Content-Length', String(body.length)], ['Content-Length', String(body.length + 5)]], body)),
        () => once('CL and TE', message('POST', '/model/parse', [...host(t), ...json, ['Content-Length', '4'], ['Transfer-Encoding', 'chunked']], `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`)),
        () => once('two Hosts', message('GET', '/model/parse', [...host(t), ['Host', 'evil.invalid']])),
        () => once('two Authorizations', post(t, '/model/parse', body, [['Authorization', 'Bearer bnVsbA.e30.x'], ['Authorization', `Bearer ${garbageJwt(random, t)}`]])),
        () => once('two Content-Types', post(t, '/webhooks/rest/webhook', '{"sender":"x","message":"hi"}', [['Content-Type', 'text/plain']])),
        () => once('obs-fold', `GET /model/parse HTTP/1.1\r\nHost: ${t.authority}\r\nX-Folded: a\r\n  b\r\n\r\n`),
        () => once('bad TE', message('POST', '/model/parse', [...host(t), ...json, ['Transfer-Encoding', 'gzip, chunked, identity']], '0\r\n\r\n')),
      ];
      return pick(random, variants)();
    },
  },
  {
    id: 'bad-utf8',
    label: 'invalid UTF-8 in parse and webhook bodies',
    make: (random, t) => {
      const bad = pick(random, [Buffer.from([0xff, 0xfe]), Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from([0xc0, 0xaf]), junk(random, 16)]);
      const path = pick(random, ['/model/parse', `/model/parse?token=${t.token}`, '/webhooks/rest/webhook']);
      const body = Buffer.concat([Buffer.from(path.startsWith('/model') ? '{"text":"' : '{"sender":"'), bad, Buffer.from(path.startsWith('/model') ? '"}' : '","message":"hi"}')]);
      return once(`${path} with ${bad.toString('hex').slice(0, 16)}`, post(t, path, body));
    },
  },
  {
    id: 'deep-json',
    label: 'deeply nested JSON within the body limit (parse with and without the token, webhook)',
    make: (random, t) => {
      const deep = nested(random, t.bodyLimit);
      const [path, body] = pick(random, [
        [`/model/parse?token=${t.token}`, `{"text":"hi","x":${deep}}`],
        [`/model/parse?token=${t.token}`, `{"text":${deep}}`],
        ['/model/parse', `{"text":"hi","x":${deep}}`],
        ['/webhooks/rest/webhook', `{"sender":${deep},"message":"hi"}`],
        ['/webhooks/rest/webhook', `{"sender":"conv-1","metadata":${deep},"message":"hi"}`],
        ['/webhooks/rest/webhook', deep],
      ] as const);
      return once(`${path} ${body.length} B`, post(t, path, body));
    },
  },
  {
    id: 'sender-types',
    label: 'webhook bodies with `sender` of every JSON type',
    make: (random, t) => {
      const sender = pick(random, senders);
      const body = random() < 0.1 ? '{"message":"hi"}' : `{"sender":${sender},"message":"hi"}`;
      return once(`sender ${sender.slice(0, 12)}`, post(t, '/webhooks/rest/webhook', body));
    },
  },
  {
    id: 'bad-jwt',
    label: 'garbage `Authorization: Bearer` JWTs on parse (`bnVsbA.e30.x`: header JSON null)',
    make: (random, t) => {
      const jwt = random() < 0.3 ? 'bnVsbA.e30.x' : garbageJwt(random, t);
      const scheme = pick(random, ['Bearer ', 'Bearer ', 'Bearer ', 'bearer ', 'Bearer  ', 'Bearer\t']);
      return once(`${scheme.trim()} ${jwt.slice(0, 24)}`, post(t, '/model/parse', `{"text":"hi","message_id":"j-${int(random, 0, 1e6)}"}`, [['Authorization', `${scheme}${jwt}`]]));
    },
  },
  {
    id: 'forged-sid',
    label: 'forged socket.io sids (polling GET and POST)',
    make: (random, t) => {
      const sid = pick(random, [
        junk(random, 20, true).toString('latin1').replace(/[&#%\s]/g, 'x'),
        `${junk(random, 8, true).toString('hex').slice(0, 8)}.forged`,
        `${t.podToken ?? 'deadbeef'}.${junk(random, 20).toString('base64url')}`,
        `${t.podToken ?? 'deadbeef'}.`,
        'deadbeef.x',
        '.',
        `${'f'.repeat(8)}.${'a'.repeat(int(random, 100, 4000))}`,
      ]);
      const target = `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}${random() < 0.2 ? '&sid=other' : ''}`;
      const request = random() < 0.5 ? message('GET', target, host(t)) : message('POST', target, [...host(t), ['Content-Type', 'text/plain;charset=UTF-8']], '42["user_uttered",{"message":"hi","session_id":"s"}]');
      return once(`sid ${sid.slice(0, 20)}`, request);
    },
  },
  {
    id: 'ws-bad-key',
    label: 'websocket upgrades with bad keys and versions (socket.io and a REST route)',
    make: (random, t) => {
      const key = pick(random, ['', 'short', '!!!!!!!!!!!!!!!!!!!!!!!!', junk(random, 30, true).toString('latin1'), 'dGhlIHNhbXBsZSBub25jZQ==']);
      const version = pick(random, ['13', '8', '99', 'x']);
      const path = pick(random, ['/socket.io/?EIO=4&transport=websocket', `/socket.io/?EIO=4&transport=websocket&sid=${t.podToken ?? 'deadbeef'}.nope`, '/webhooks/rest/webhook', '/model/parse']);
      const headers: Headers = [...host(t), ['Upgrade', pick(random, ['websocket', 'WebSocket', 'h2c', 'x'])], ['Connection', 'Upgrade'], ...(key ? [['Sec-WebSocket-Key', key] as const] : []), ['Sec-WebSocket-Version', version]];
      return { variant: `${path.slice(0, 30)} key ${key.slice(0, 8)} v${version}`, request: { steps: [message('GET', path, headers)], timeoutMs: 1500 } };
    },
  },
  {
    id: 'http10-close',
    label: 'HTTP/1.0 (with and without Host) and `Connection: close` requests',
    make: (random, t) => {
      const [path, body] = pick(random, [
        ['/model/parse', '{"text":"hi"}'],
        ['/webhooks/rest/webhook', `{"sender":"conv-${int(random, 0, 99)}","message":"hi"}`],
        ['/no/such/route', undefined],
      ] as const);
      const method = body === undefined ? 'GET' : 'POST';
      const variants: (() => FuzzCase)[] = [
        () => once(`HTTP/1.0 ${path}`, message(method, path, body === undefined ? [] : json, body, 'HTTP/1.0')),
        () => once(`HTTP/1.0 keep-alive ${path}`, message(method, path, [...host(t), ['Connection', 'keep-alive'], ...(body === undefined ? [] : json)], body, 'HTTP/1.0')),
        () => once(`Connection: close ${path}`, message(method, path, [...host(t), ['Connection', 'close'], ...(body === undefined ? [] : json)], body)),
        () => once(`HTTP/1.0 chunked ${path}`, message('POST', path, [...json, ['Transfer-Encoding', 'chunked']], `${(body ?? 'x').length.toString(16)}\r\n${body ?? 'x'}\r\n0\r\n\r\n`, 'HTTP/1.0')),
      ];
      return pick(random, variants)();
    },
  },
  {
    id: 'abandoned-upload',
    label: 'abandoned uploads: part of a declared or chunked body, then a vanish (5-1500 ms), a FIN, or silence until 1.9 s',
    make: (random, t) => {
      const path = pick(random, ['/model/parse', '/webhooks/rest/webhook', '/model/predict']);
      const declared = int(random, 100, t.bodyLimit);
      const sent = int(random, 0, Math.min(declared - 1, 4000));
      const chunked = random() < 0.3;
      const head = message('POST', path, [...host(t), ...json, chunked ? ['Transfer-Encoding', 'chunked'] : ['Content-Length', String(declared)]]);
      const part = chunked ? `${declared.toString(16)}\r\n${'{'.repeat(sent)}` : '{'.repeat(sent);
      const how = pick(random, ['vanish', 'fin', 'silence'] as const);
      const request: RawRequest = how === 'vanish' ? { steps: [head, part], abandonAfterMs: int(random, 5, 1500) } : how === 'fin' ? { steps: [head, part], endAfterSteps: true } : { steps: [head, part], abandonAfterMs: 1900 };
      return { variant: `${how} ${chunked ? 'chunked' : 'declared'} ${sent}/${declared} B ${path}`, request };
    },
  },
];
