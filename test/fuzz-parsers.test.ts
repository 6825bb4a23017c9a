/**
 * Property-based fuzzing of every parser a client's bytes reach before the gateway picks a pod: the
 * webhook `sender` (proxy/body.ts), Rasa route classification (routing/rasa-routes.ts), the request
 * target's path and the route table (routing/route-table.ts), the socket.io sid helpers and open-packet
 * rewrite (affinity/socketio-sid.ts), session ids in engine.io/socket.io frames
 * (affinity/socketio-session.ts) and the websocket frame hook (proxy/socketio.ts). Auth tokens and
 * request ids are fuzzed elsewhere.
 *
 * Why fast-check: these functions take untrusted text, and the inputs that break such parsers (lone
 * surrogates, bad %-escapes, separators inside ids, 5000-deep JSON) are ones nobody writes by hand.
 * Each property states the documented result, generators embed known-good inputs in random noise,
 * shrinking turns a failure into a minimal counterexample, and fixed seeds keep runs reproducible.
 * Every bug a property found has an example-based regression test beside it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { senderOf } from '../src/proxy/body.js';
import { classifyRasaRoute } from '../src/routing/rasa-routes.js';
import { pathOf, RouteTable } from '../src/routing/route-table.js';
import type { RouteConfig } from '../src/config.js';
import { podToken, sidOf, splitSid, stripSidToken, tokeniseOpenPacket } from '../src/affinity/socketio-sid.js';
import { sessionIdsIn } from '../src/affinity/socketio-session.js';
import { onSocketFrame } from '../src/proxy/socketio.js';
import { Backend } from '../src/pool/backend.js';
import type { PoolRuntime } from '../src/proxy/pool-runtime.js';

// ---------------------------------------------------------------------------------------------
// Shared generators

/** Any UTF-16 code unit, lone surrogates included (what a JS string can hold). */
const utf16Unit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
/** Pieces that matter to these parsers, so random strings hit separators and escapes often. */
const spicyUnit = fc.constantFrom(
  '%', '%zz', '%E0%A4', '%2F', '%25', '%00', '%ED%A0%80', '/', '?', '#', '&', '=', '.', '$', '$&', '$$', "$'", '$`',
  '\x1e', '[', ']', '{', '}', '"', ',', ':', '\\', '0', '2', '4', '42', 'sid=', 'session_', '\n', '\r', ' ', '\u2028', 'é', '😀',
);
/** Any JS string, weighted toward the awkward ones. */
const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: utf16Unit }),
  fc.string({ unit: spicyUnit }),
  fc.string({ unit: fc.oneof(spicyUnit, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })) }),
);
/** Strings without lone surrogates (what encodeURIComponent accepts). */
const wellFormed = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: fc.oneof(spicyUnit, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })) }),
);
const methods = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'get', 'BREW', '');

function backendFor(key: string): Backend {
  return new Backend({ key, origin: key, pod: 'pod', ready: true, serving: true, terminating: false }, 4, 10, 0);
}
const backendArb = fc.oneof(fc.webUrl().map((u) => new URL(u).origin), anyText).map(backendFor);

// ---------------------------------------------------------------------------------------------
// 1. senderOf: the webhook body's conversation key

/** Rasa's conversation id for a parsed `sender`: str(sender), "default" for null/missing; objects are approximated as "default". */
function rasaKey(sender: unknown): string {
  if (typeof sender === 'string') return sender;
  if (typeof sender === 'number') return String(sender);
  if (typeof sender === 'boolean') return sender ? 'True' : 'False';
  return 'default';
}
const jsonWhitespace = fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r') });

test('senderOf: any bytes give one of the documented results and agree with the JSON grammar', () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    anyText.map((s) => Buffer.from(s, 'utf8')),
  );
  fc.assert(
    fc.property(bytes, (body) => {
      const result = senderOf(body);
      let parsed: unknown;
      let valid = true;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        valid = false;
      }
      if (!valid) assert.deepEqual(result, { unkeyed: 'invalid_json' });
      else if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) assert.deepEqual(result, { unkeyed: 'not_an_object' });
      else assert.deepEqual(result, { key: rasaKey((parsed as { sender?: unknown }).sender) });
    }),
    { seed: 1101, numRuns: 400 },
  );
});

test('senderOf: every JSON value, and objects whose sender is every JSON type or missing', () => {
  const senderValue = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
    fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  );
  const body = fc.oneof(
    fc.jsonValue().map((v) => ({ value: v as unknown })),
    fc
      .record({ extra: fc.dictionary(fc.string().filter((k) => k !== 'sender'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), sender: senderValue, present: fc.boolean() })
      .map(({ extra, sender, present }) => ({ value: (present ? { ...extra, sender } : extra) as unknown })),
  );
  fc.assert(
    fc.property(body, fc.constantFrom(undefined, 2, '\t'), jsonWhitespace, jsonWhitespace, ({ value }, indent, before, after) => {
      const text = before + JSON.stringify(value, null, indent) + after;
      const result = senderOf(Buffer.from(text, 'utf8'));
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        assert.deepEqual(result, { unkeyed: 'not_an_object' });
      } else {
        const sender = Object.prototype.hasOwnProperty.call(value, 'sender') ? (value as { sender: unknown }).sender : undefined;
        // JSON.stringify turns -0 into 0: compare with what was written, not the double generated.
        assert.deepEqual(result, { key: rasaKey(typeof sender === 'number' ? JSON.parse(JSON.stringify(sender)) : sender) });
        if (typeof sender === 'string') assert.deepEqual(result, { key: sender }, 'a string sender round-trips exactly');
      }
    }),
    { seed: 1102, numRuns: 400 },
  );
});

test('senderOf: a known-good body in noise keys only when the noise is JSON whitespace; the last duplicate sender wins', () => {
  const junk = anyText.filter((s) => /[^ \t\n\r]/.test(s));
  fc.assert(
    fc.property(wellFormed, jsonWhitespace, junk, fc.string(), (sender, ws, garbage, first) => {
      const good = JSON.stringify({ sender, message: 'hi' });
      assert.deepEqual(senderOf(Buffer.from(ws + good + ws)), { key: sender });
      assert.deepEqual(senderOf(Buffer.from(good + garbage)), { unkeyed: 'invalid_json' });
      assert.deepEqual(senderOf(Buffer.from(good.slice(0, -1))), { unkeyed: 'invalid_json' }, 'truncated body');
      const duplicated = `{"sender":${JSON.stringify(first)},"message":"x","sender":${JSON.stringify(sender)}}`;
      assert.deepEqual(senderOf(Buffer.from(duplicated)), { key: sender });
    }),
    { seed: 1103, numRuns: 300 },
  );
});

test('senderOf: invalid UTF-8 inside the sender string keys on its U+FFFD decoding; a BOM is not JSON', () => {
  // Bytes that cannot end the JSON string: no quote, no backslash, no control characters.
  const stringBytes = fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b.filter((x) => x >= 0x20 && x !== 0x22 && x !== 0x5c)));
  fc.assert(
    fc.property(stringBytes, (raw) => {
      const body = Buffer.concat([Buffer.from('{"sender":"'), raw, Buffer.from('","message":"m"}')]);
      assert.deepEqual(senderOf(body), { key: raw.toString('utf8') });
      assert.deepEqual(senderOf(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body])), { unkeyed: 'invalid_json' });
    }),
    { seed: 1104, numRuns: 300 },
  );
});

test('senderOf: deep nesting and huge numbers (examples)', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  assert.deepEqual(senderOf(Buffer.from('['.repeat(5000))), { unkeyed: 'invalid_json' });
  assert.deepEqual(senderOf(Buffer.from('{'.repeat(5000))), { unkeyed: 'invalid_json' });
  assert.deepEqual(senderOf(Buffer.from(deep(5000))), { unkeyed: 'not_an_object' });
  assert.deepEqual(senderOf(Buffer.from(`{"sender":${deep(5000)}}`)), { key: 'default' });
  assert.deepEqual(senderOf(Buffer.from(`{"sender":"deep","x":${deep(5000)}}`)), { key: 'deep' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":1e400}')), { key: 'Infinity' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":-0}')), { key: '0' });
  assert.deepEqual(senderOf(Buffer.from(`{"sender":${'9'.repeat(400)}}`)), { key: 'Infinity' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":12345678901234567890}')), { key: '12345678901234567000' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":"' + 'x'.repeat(100_000) + '"}')), { key: 'x'.repeat(100_000) });
  assert.deepEqual(senderOf(Buffer.alloc(0)), { unkeyed: 'invalid_json' });
  fc.assert(
    fc.property(fc.maxSafeInteger(), (n) => assert.deepEqual(senderOf(Buffer.from(`{"sender":${n}}`)), { key: String(n) })),
    { seed: 1105, numRuns: 200 },
  );
});

test('senderOf regression: a boolean sender keys as Rasa names its conversation (str(True) is "True"), null/missing as "default"', () => {
  assert.deepEqual(senderOf(Buffer.from('{"sender":true,"message":"m"}')), { key: 'True' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":false}')), { key: 'False' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":null}')), { key: 'default' });
  assert.deepEqual(senderOf(Buffer.from('{"message":"m"}')), { key: 'default' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":{"id":"a"}}')), { key: 'default' });
  assert.deepEqual(senderOf(Buffer.from('{"sender":["a"]}')), { key: 'default' });
});

// ---------------------------------------------------------------------------------------------
// 2. classifyRasaRoute: conversation ids from `/conversations/{id}/<action>`

const actions = ['tracker/events', 'tracker', 'messages', 'trigger_intent', 'predict', 'execute', 'story'] as const;
const action = fc.constantFrom(...actions);
const kinds = new Set(['webhook', 'conversation', 'socketio', 'model', 'other']);
const idempotentFor = (method: string, act: string) => method === 'GET' || method === 'HEAD' || (method === 'POST' && act === 'predict');

test('classifyRasaRoute: any method and path never throws and gives a well-formed route', () => {
  const path = fc.oneof(anyText, anyText.map((s) => '/conversations/' + s), anyText.map((s) => '/' + s), fc.webPath());
  fc.assert(
    fc.property(methods, path, (method, p) => {
      const r = classifyRasaRoute(method, p);
      assert.ok(kinds.has(r.kind));
      assert.equal(typeof r.idempotent, 'boolean');
      assert.equal(r.kind === 'conversation', r.conversationId !== undefined);
      if (r.kind === 'conversation') assert.ok(actions.includes(r.action as (typeof actions)[number]) && p.endsWith('/' + r.action));
    }),
    { seed: 1201, numRuns: 500 },
  );
});

test('classifyRasaRoute: an encoded conversation id round-trips for every action (slashes kept raw or as %2F)', () => {
  const id = wellFormed.filter((s) => s.length > 0);
  fc.assert(
    fc.property(id, action, methods, fc.boolean(), (conversationId, act, method, keepSlashes) => {
      const encoded = keepSlashes ? conversationId.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(conversationId);
      const r = classifyRasaRoute(method, `/conversations/${encoded}/${act}`);
      assert.deepEqual(r, { kind: 'conversation', conversationId, action: act, idempotent: idempotentFor(method, act) });
    }),
    { seed: 1202, numRuns: 500 },
  );
});

test('classifyRasaRoute: a raw id without % comes back unchanged; %-encoded bytes decode as UTF-8 or stay raw', () => {
  const rawId = fc.string({ unit: fc.oneof(utf16Unit, spicyUnit) }).map((s) => s.replaceAll('%', '')).filter((s) => s.length > 0);
  fc.assert(
    fc.property(rawId, action, (conversationId, act) => {
      assert.equal(classifyRasaRoute('GET', `/conversations/${conversationId}/${act}`).conversationId, conversationId);
    }),
    { seed: 1203, numRuns: 400 },
  );
  const fatal = new TextDecoder('utf-8', { fatal: true });
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 12 }), action, (bytes, act) => {
      const encoded = [...bytes].map((b) => '%' + b.toString(16).padStart(2, '0').toUpperCase()).join('');
      let decoded: string | undefined;
      try {
        decoded = fatal.decode(bytes);
        // decodeURIComponent keeps an encoded BOM, TextDecoder strips it; neither accepts encoded surrogates.
        if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) decoded = '\ufeff' + decoded;
      } catch {
        decoded = undefined;
      }
      const r = classifyRasaRoute('POST', `/conversations/${encoded}/${act}`);
      assert.equal(r.kind, 'conversation');
      assert.equal(r.conversationId, decoded ?? encoded);
    }),
    { seed: 1204, numRuns: 400 },
  );
});

test('classifyRasaRoute regression: an id holding a line terminator is still a conversation id', () => {
  assert.equal(classifyRasaRoute('GET', '/conversations/a\nb/tracker').conversationId, 'a\nb');
  assert.equal(classifyRasaRoute('GET', '/conversations/\u2028/messages').conversationId, '\u2028');
});

test('classifyRasaRoute: empty ids, unknown actions and the other Rasa routes', () => {
  fc.assert(
    fc.property(action, methods, wellFormed, (act, method, name) => {
      assert.equal(classifyRasaRoute(method, `/conversations//${act}`).kind === 'conversation', false, 'an empty id is no conversation');
      assert.equal(classifyRasaRoute(method, `/conversations/${act}`).kind === 'conversation', false);
      assert.notEqual(classifyRasaRoute(method, `/conversations/x/${act}x`).kind, 'conversation');
      assert.equal(classifyRasaRoute(method, `/socket.io/${name}`).kind, 'socketio');
      const hook = classifyRasaRoute(method, `/webhooks/${encodeURIComponent(name)}/webhook`);
      assert.equal(hook.kind === 'webhook', method === 'POST' && name.length > 0);
      const model = classifyRasaRoute(method, `/model/${name}`);
      assert.equal(model.kind, 'model');
    }),
    { seed: 1205, numRuns: 300 },
  );
  assert.equal(classifyRasaRoute('GET', '/socket.io').kind, 'socketio');
  assert.equal(classifyRasaRoute('POST', '/model/parse').idempotent, true);
  assert.equal(classifyRasaRoute('PUT', '/model').idempotent, false);
});

// ---------------------------------------------------------------------------------------------
// 3. pathOf and RouteTable.match

const requestTarget = fc.oneof(
  anyText,
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.webPath().chain((p) => fc.tuple(fc.constant(p), anyText).map(([a, b]) => a + '?' + b)),
  fc.constantFrom('*', '/', '', '?', '#', '/?#?', '/a%zz', '/a%E0%A4?x', 'http://x/y?z', '//x/y'),
  fc.tuple(fc.webPath(), fc.nat({ max: 20_000 })).map(([p, n]) => p + '/a'.repeat(n) + '?q=' + 'b'.repeat(n)),
);

test('pathOf: never throws; the path is the target up to its first ?, and path + rest is the target', () => {
  fc.assert(
    fc.property(requestTarget, (url) => {
      const path = pathOf(url);
      assert.ok(!path.includes('?'));
      assert.ok(url.startsWith(path));
      const rest = url.slice(path.length);
      assert.ok(rest === '' || rest.startsWith('?'));
      if (!url.includes('?')) assert.equal(path, url);
    }),
    { seed: 1301, numRuns: 400 },
  );
  fc.assert(
    fc.property(anyText.map((s) => s.replaceAll('?', '')), anyText, (path, query) => assert.equal(pathOf(`${path}?${query}`), path)),
    { seed: 1302, numRuns: 300 },
  );
});

/** The documented matching: an exact path (first in config), else the longest prefix (first among equals). */
function expectedRoute(configs: readonly RouteConfig[], path: string): RouteConfig | undefined {
  const exact = configs.find((c) => c.path !== undefined && c.path === path);
  if (exact) return exact;
  let best: RouteConfig | undefined;
  for (const c of configs) {
    if (c.path === undefined && c.prefix !== undefined && path.startsWith(c.prefix) && (best === undefined || c.prefix.length > (best.prefix as string).length)) best = c;
  }
  return best;
}

test('RouteTable.match: exact paths first, then the longest prefix, first in config among equals, for any target', () => {
  const piece = fc.oneof(fc.constantFrom('/', '/model', '/model/', '/model/parse', '/conversations/', '/socket.io', '/webhooks/', '', '*', 'http://x'), fc.webPath(), anyText);
  const config = fc.record({ text: piece, exact: fc.boolean(), pool: fc.constantFrom('a', 'b', 'c') }).map(
    ({ text, exact, pool }): RouteConfig => (exact ? { path: text, pool } : { prefix: text, pool }),
  );
  fc.assert(
    fc.property(fc.array(config, { maxLength: 8 }), fc.array(fc.oneof(requestTarget, piece), { maxLength: 4 }), fc.array(anyText, { maxLength: 4 }), (configs, targets, suffixes) => {
      const table = new RouteTable(configs);
      // Targets that hit: each configured text, alone and with random suffixes.
      const paths = [...targets.map(pathOf), ...configs.flatMap((c) => [c.path ?? c.prefix ?? '', ...suffixes.map((s) => (c.path ?? c.prefix ?? '') + s)])];
      for (const path of paths) assert.equal(table.match(path)?.config, expectedRoute(configs, path), `path ${JSON.stringify(path)}`);
    }),
    { seed: 1303, numRuns: 300 },
  );
});

test('RouteTable.match: absolute-form, * and fragments are matched as text like any other target (examples)', () => {
  const table = new RouteTable([{ prefix: '/', pool: 'dialog' }, { path: '/model/parse', pool: 'nlu' }]);
  assert.equal(table.match(pathOf('http://x/model/parse?q=1')), undefined, 'absolute-form does not start with /');
  assert.equal(table.match(pathOf('*')), undefined);
  assert.equal(table.match(pathOf('/model/parse?x#y'))?.pool, 'nlu');
  assert.equal(table.match(pathOf('/model/parse#?x'))?.pool, 'dialog', 'a # before ? belongs to the path');
  assert.equal(table.match(pathOf('/a%zz%E0%A4'))?.pool, 'dialog');
  assert.equal(table.match(pathOf('/' + 'x'.repeat(200_000) + '?q'))?.pool, 'dialog');
});

// ---------------------------------------------------------------------------------------------
// 4. socket.io sid helpers

/** A query parameter that is not sid= (no & so it stays one parameter); may contain "sid=" inside. */
const otherParam = fc.oneof(
  fc.constantFrom('EIO=4', 'transport=polling', 'transport=websocket', 't=OabcDEF', 'xsid=00000000.x', 'q=sid%3D1', 'sid', 'SID=1', 'b64=1', ''),
  anyText.map((s) => s.replaceAll('&', '')).filter((s) => !s.startsWith('sid=')),
);
const pathPart = fc.oneof(fc.constantFrom('/socket.io/', '/socket.io', ''), anyText.map((s) => s.replaceAll('?', '')));
const badEscape = fc.constantFrom('%zz', '%E0%A4', '%C3', '%ED%A0%80', '%G1', '%FF');
const hex8 = fc.stringMatching(/^[0-9a-f]{8}$/);

test('sidOf: never throws; no ? or no sid= part is undefined', () => {
  fc.assert(
    fc.property(anyText, (url) => {
      const sid = sidOf(url);
      assert.ok(sid === undefined || typeof sid === 'string');
      if (!url.includes('?') || !url.includes('sid=')) assert.equal(sid, undefined);
    }),
    { seed: 1401, numRuns: 500 },
  );
});

test('sidOf: the first sid= parameter decodes back from any position among any other parameters', () => {
  fc.assert(
    fc.property(pathPart, fc.array(otherParam, { maxLength: 4 }), wellFormed, fc.array(fc.oneof(otherParam, anyText.map((s) => 'sid=' + s)), { maxLength: 4 }), (path, before, sid, after) => {
      const url = `${path}?${[...before, `sid=${encodeURIComponent(sid)}`, ...after].join('&')}`;
      assert.equal(sidOf(url), sid);
    }),
    { seed: 1402, numRuns: 500 },
  );
});

test('sidOf: an empty sid= is the empty sid; a bad %-escape in the first sid= is undefined even when a later one is good', () => {
  fc.assert(
    fc.property(pathPart, fc.array(otherParam, { maxLength: 3 }), wellFormed, badEscape, wellFormed, (path, before, a, bad, b) => {
      const query = (sid: string) => `${path}?${[...before, `sid=${sid}`, 'sid=good'].join('&')}`;
      assert.equal(sidOf(query('')), '');
      assert.equal(sidOf(query(encodeURIComponent(a) + bad + encodeURIComponent(b))), undefined);
    }),
    { seed: 1403, numRuns: 300 },
  );
});

test('splitSid: never throws; when it splits, token.sid is the input and the token is 8 hex digits', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, hex8.chain((t) => anyText.map((s) => `${t}${s}`))), (sid) => {
      const parts = splitSid(sid);
      if (parts === undefined) return;
      assert.match(parts.token, /^[0-9a-f]{8}$/);
      assert.ok(parts.sid.length > 0);
      assert.equal(`${parts.token}.${parts.sid}`, sid);
    }),
    { seed: 1404, numRuns: 500 },
  );
});

test('splitSid: `${podToken(backend)}.${sid}` splits back for any pod and any non-empty pod sid', () => {
  fc.assert(
    fc.property(backendArb, anyText.filter((s) => s.length > 0), (backend, sid) => {
      const token = podToken(backend);
      assert.match(token, /^[0-9a-f]{8}$/);
      assert.deepEqual(splitSid(`${token}.${sid}`), { token, sid });
      if (!/^[0-9a-f]{8}\.[^]/.test(sid)) assert.equal(splitSid(sid), undefined, 'a pod sid without a token is not split');
    }),
    { seed: 1405, numRuns: 400 },
  );
  assert.equal(splitSid('0000abcd.'), undefined, 'no pod sid after the token');
  assert.equal(splitSid('0000ABCD.x'), undefined, 'tokens are lower-case hex');
});

test('stripSidToken: any encoding of the gateway sid comes out as the pod sid, every other byte unchanged', () => {
  const encodings = fc.constantFrom('canonical', 'raw', 'every-char', 'dot-encoded');
  const encode = (s: string, how: string): string => {
    if (how === 'raw') return s;
    if (how === 'canonical') return encodeURIComponent(s);
    if (how === 'dot-encoded') return encodeURIComponent(s).replaceAll('.', '%2E');
    return [...Buffer.from(s, 'utf8')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
  };
  fc.assert(
    fc.property(pathPart, fc.array(otherParam, { maxLength: 3 }), hex8, wellFormed.filter((s) => s.length > 0), fc.array(otherParam, { maxLength: 3 }), encodings, (path, before, token, podSid, after, how) => {
      const gatewaySid = `${token}.${podSid}`;
      // A raw sid holding & or % would not read back as itself: raw only for sids that survive it.
      const form = how === 'raw' && /[&%]/.test(gatewaySid) ? 'canonical' : how;
      const head = `${path}?${[...before, ''].join('&')}`;
      const tail = ['', ...after].join('&');
      const url = `${head}sid=${encode(gatewaySid, form)}${tail}`;
      assert.equal(sidOf(url), gatewaySid);
      const stripped = stripSidToken(url, gatewaySid, podSid);
      assert.equal(sidOf(stripped), podSid);
      assert.equal(stripped, `${head}sid=${encodeURIComponent(podSid)}${tail}`);
    }),
    { seed: 1406, numRuns: 500 },
  );
});

test('sidOf, splitSid, stripSidToken as routeSocket chains them: never throws on a latin1 request target, and the pod sees its own sid', () => {
  // Node hands request targets over latin1-decoded, so they hold no lone surrogates.
  const latin1 = fc.string({ unit: fc.oneof(spicyUnit.filter((u) => /^[\x00-\xff]*$/.test(u)), fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c))) });
  const target = fc.oneof(latin1, fc.tuple(latin1, hex8, latin1, latin1).map(([path, token, sid, rest]) => `${path.replaceAll('?', '')}?EIO=4&sid=${token}.${sid}&${rest}`));
  fc.assert(
    fc.property(target, (url) => {
      const sid = sidOf(url);
      const parts = sid === undefined ? undefined : splitSid(sid);
      if (sid === undefined || parts === undefined) return;
      const stripped = stripSidToken(url, sid, parts.sid);
      assert.equal(sidOf(stripped), parts.sid);
      assert.equal(pathOf(stripped), pathOf(url));
    }),
    { seed: 1409, numRuns: 400 },
  );
});

test('stripSidToken regression: $ patterns in the sid, a sid= inside another parameter, an encoded dot', () => {
  assert.equal(stripSidToken('/socket.io/?EIO=4&sid=0000abcd.a$$b', '0000abcd.a$$b', 'a$$b'), '/socket.io/?EIO=4&sid=a%24%24b');
  assert.equal(stripSidToken('/socket.io/?xsid=0000abcd.s&sid=0000abcd.s', '0000abcd.s', 's'), '/socket.io/?xsid=0000abcd.s&sid=s');
  assert.equal(stripSidToken('/socket.io/?sid=0000abcd%2Es&EIO=4', '0000abcd.s', 's'), '/socket.io/?sid=s&EIO=4');
  assert.equal(stripSidToken('/socket.io/?EIO=4', '0000abcd.s', 's'), '/socket.io/?EIO=4', 'no sid, nothing to strip');
});

test('tokeniseOpenPacket: never throws; anything but an open packet with a string sid is undefined', () => {
  const body = fc.oneof(
    anyText,
    anyText.map((s) => '0' + s),
    anyText.map((s) => '0{' + s),
    fc.jsonValue().map((v) => '0' + JSON.stringify(v)),
    fc.jsonValue().map((v) => `0{"sid":${JSON.stringify(v)}}`),
  );
  fc.assert(
    fc.property(body, backendArb, (text, backend) => {
      const out = tokeniseOpenPacket(text, backend);
      if (!text.startsWith('0{')) assert.equal(out, undefined);
      if (out === undefined) return;
      const end = text.indexOf('\x1e');
      const open = JSON.parse((end === -1 ? text : text.slice(0, end)).slice(1)) as { sid: unknown };
      assert.equal(typeof open.sid, 'string');
      const outEnd = out.indexOf('\x1e');
      const rewritten = JSON.parse((outEnd === -1 ? out : out.slice(0, outEnd)).slice(1)) as { sid: string };
      assert.equal(rewritten.sid, `${podToken(backend)}.${open.sid as string}`);
      assert.equal(outEnd === -1 ? '' : out.slice(outEnd), end === -1 ? '' : text.slice(end));
    }),
    { seed: 1407, numRuns: 500 },
  );
});

test('tokeniseOpenPacket: a valid open packet (then optional \\x1e packets) gets the token and nothing else changes', () => {
  const open = fc.record({
    extra: fc.dictionary(fc.string().filter((k) => k !== 'sid'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    sid: fc.oneof(fc.string({ minLength: 1 }), fc.string({ unit: 'binary', minLength: 1 }), fc.string({ unit: utf16Unit, minLength: 1 }), fc.constant('')),
    sidFirst: fc.boolean(),
  }).map(({ extra, sid, sidFirst }) => {
    const standard = { upgrades: ['websocket'], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1000000 };
    return sidFirst ? { sid, ...standard, ...extra } : { ...standard, ...extra, sid };
  });
  const rest = fc.option(fc.array(anyText, { minLength: 1, maxLength: 3 }).map((ps) => '\x1e' + ps.join('\x1e')), { nil: '' });
  fc.assert(
    fc.property(open, fc.constantFrom(undefined, 1), rest, backendArb, (packet, indent, more, backend) => {
      const token = podToken(backend);
      const body = '0' + JSON.stringify(packet, null, indent) + more;
      const out = tokeniseOpenPacket(body, backend);
      assert.ok(out !== undefined);
      const end = out.indexOf('\x1e');
      assert.equal(end === -1 ? '' : out.slice(end), more, 'the packets after the open packet are unchanged');
      const rewritten = JSON.parse((end === -1 ? out : out.slice(0, end)).slice(1)) as Record<string, unknown>;
      const original = JSON.parse(JSON.stringify(packet)) as Record<string, unknown>;
      assert.deepEqual(Object.keys(rewritten), Object.keys(original), 'same fields in the same order');
      assert.deepEqual(rewritten, { ...original, sid: `${token}.${packet.sid}` });
      if (packet.sid.length > 0) assert.deepEqual(splitSid(rewritten.sid as string), { token, sid: packet.sid });
    }),
    { seed: 1408, numRuns: 400 },
  );
});

// ---------------------------------------------------------------------------------------------
// 5. sessionIdsIn: conversation ids in engine.io/socket.io frames

/** A generated packet and the ids it should yield. */
interface Packet {
  readonly text: string;
  readonly ids: readonly string[];
}
const namespace = fc.oneof(
  fc.constant(''),
  fc.constantFrom('/', '/chat', '/a[b', '/x]['),
  fc.string({ unit: fc.oneof(spicyUnit, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })) }).map((s) => '/' + s.replaceAll(',', '').replaceAll('\x1e', '')),
);
const ackId = fc.option(fc.nat().map(String), { nil: '' });
const sessionIdValue = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: utf16Unit }), fc.jsonValue({ maxDepth: 1 }), fc.constant(undefined));
const extraArgs = fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 2 });

const eventPacket: fc.Arbitrary<Packet> = fc
  .record({
    ns: namespace,
    ack: ackId,
    name: fc.constantFrom('session_request', 'user_uttered'),
    sessionId: sessionIdValue,
    fields: fc.dictionary(fc.string().filter((k) => k !== 'session_id'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
    args: extraArgs,
  })
  .map(({ ns, ack, name, sessionId, fields, args }) => {
    const data = sessionId === undefined ? fields : { ...fields, session_id: sessionId };
    const text = `42${ns === '' ? '' : ns + ','}${ack}${JSON.stringify([name, data, ...args])}`;
    return { text, ids: typeof sessionId === 'string' && sessionId.length > 0 ? [sessionId] : [] };
  });

/** Packets that name a session but are not session_request/user_uttered EVENTs: none may yield an id. */
const decoyPacket: fc.Arbitrary<Packet> = fc
  .record({
    ns: namespace,
    ack: ackId,
    name: fc.oneof(fc.constantFrom('bot_uttered', 'session_confirm', 'Session_request', 'user_uttered ', 'session_request\u0000'), fc.string()),
    kind: fc.constantFrom('other-event', 'ack', 'binary-event', 'connect', 'error', 'not-array', 'truncated', 'junk-before', 'ack-before-ns', 'engine'),
    garbage: anyText.map((s) => s.replaceAll('\x1e', '')),
    engineType: fc.constantFrom('0', '1', '2', '3', '5', '6', 'b'),
  })
  .map(({ ns, ack, name, kind, garbage, engineType }): Packet => {
    const body = JSON.stringify(['session_request', { session_id: 'decoy' }]);
    const nsPart = ns === '' ? '' : ns + ',';
    const other = name === 'session_request' || name === 'user_uttered' ? 'x' : name;
    const texts: Record<typeof kind, string> = {
      'other-event': `42${nsPart}${ack}${JSON.stringify([other, { session_id: 'decoy' }])}`,
      ack: `43${nsPart}${ack}${body}`,
      'binary-event': `451-${nsPart}${ack}${body}`,
      connect: `40${nsPart}{"session_id":"decoy"}`,
      error: `44${nsPart}{"message":${JSON.stringify(body)}}`,
      'not-array': `42${nsPart}${ack}{"0":"session_request","1":{"session_id":"decoy"}}`,
      truncated: `42${nsPart}${ack}${body.slice(0, -1)}`,
      // Neither a namespace, nor ack digits, nor JSON: python-socketio cannot decode it.
      'junk-before': `42x${garbage}${body}`,
      // The ack id follows the namespace; digits then a namespace is no packet.
      'ack-before-ns': `42${ack || '7'}${ns === '' ? '/chat' : ns},${body}`,
      // Engine.io packets that are not socket.io EVENTs (a lone 4 would make the garbage the socket.io type).
      engine: `${engineType}${garbage}${body}`,
    };
    return { text: texts[kind], ids: [] };
  });

test('sessionIdsIn: the session_id of each session_request/user_uttered EVENT, in order, for polling payloads and websocket frames', () => {
  const packets = fc.array(fc.oneof({ weight: 3, arbitrary: eventPacket }, { weight: 2, arbitrary: decoyPacket }), { minLength: 1, maxLength: 6 });
  fc.assert(
    fc.property(packets, (list) => {
      // Polling: packets joined by \x1e. Websocket: each packet is a frame of its own.
      assert.deepEqual(sessionIdsIn(list.map((p) => p.text).join('\x1e')), list.flatMap((p) => p.ids));
      for (const p of list) assert.deepEqual(sessionIdsIn(p.text), p.ids, `frame ${JSON.stringify(p.text)}`);
    }),
    { seed: 1501, numRuns: 600 },
  );
});

test('sessionIdsIn: never throws on any text and yields only non-empty strings', () => {
  const text = fc.oneof(
    anyText,
    fc.array(anyText, { maxLength: 4 }).map((ps) => ps.map((p) => '42' + p).join('\x1e')),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('utf8') + 'session_'),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1') + '42["session_request",{"session_id":"s"}]'),
  );
  fc.assert(
    fc.property(text, (payload) => {
      const ids = sessionIdsIn(payload);
      assert.ok(Array.isArray(ids));
      for (const id of ids) assert.ok(typeof id === 'string' && id.length > 0);
      if (!payload.includes('session_')) assert.deepEqual(ids, []);
    }),
    { seed: 1502, numRuns: 500 },
  );
});

test('sessionIdsIn regression: the namespace ends at its comma and only digits sit between it and the JSON', () => {
  assert.deepEqual(sessionIdsIn('42/a[b,["session_request",{"session_id":"s1"}]'), ['s1'], 'a [ inside the namespace');
  assert.deepEqual(sessionIdsIn('42/chat,12["user_uttered",{"message":"hi","session_id":"s2"}]'), ['s2']);
  assert.deepEqual(sessionIdsIn('42xyz["session_request",{"session_id":"s3"}]'), [], 'not a socket.io EVENT');
  assert.deepEqual(sessionIdsIn('421/chat,["session_request",{"session_id":"s4"}]'), [], 'the ack id comes after the namespace');
  assert.deepEqual(sessionIdsIn('2\x1e42["session_request",{"session_id":"a"}]\x1e42["user_uttered",{"session_id":"b"}]'), ['a', 'b']);
});

// ---------------------------------------------------------------------------------------------
// 6. onSocketFrame: the websocket frame hook

function fakePools(backends: readonly Backend[], withAffinity = true) {
  const remembered: [string, Backend][] = [];
  const byKey = new Map(backends.map((b) => [b.key, b]));
  const runtime = {
    pool: { get: (key: string) => byKey.get(key) },
    affinity: withAffinity ? {} : undefined,
    scheduler: { remember: (id: string, b: Backend) => remembered.push([id, b]) },
  } as unknown as PoolRuntime;
  return { pools: new Map([['dialog', runtime]]) as ReadonlyMap<string, PoolRuntime>, remembered };
}
const frameText = fc.oneof(anyText, eventPacket.map((p) => p.text), fc.array(eventPacket, { maxLength: 3 }).map((ps) => ps.map((p) => p.text).join('\x1e')));
const frameData = fc.oneof(frameText, frameText.map((s) => Buffer.from(s)), fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)));
const targetUrl = fc.oneof(
  fc.constantFrom(undefined, '', 'ws://garbage', 'ws://', 'ws://[', 'ws://a b', 'wss://x:99999', 'garbage', 'ws:', 'ws://[::1', 'http://', '\u0000'),
  fc.webUrl().map((u) => u.replace(/^http/, 'ws')),
  anyText,
);

test('onSocketFrame: never throws for any frame and any target url, with or without pools', () => {
  const { pools } = fakePools([backendFor('http://10.0.0.1:5005')]);
  fc.assert(
    fc.property(frameData, fc.boolean(), targetUrl, (data, binary, url) => {
      onSocketFrame(new Map(), { url }, { data, binary });
      onSocketFrame(pools, url === undefined ? {} : { url }, { data, binary });
    }),
    { seed: 1601, numRuns: 400 },
  );
});

test('onSocketFrame: binds each session id of a text frame to the pod the target url names, nothing for binary frames', () => {
  const host = fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.boolean());
  fc.assert(
    fc.property(host, fc.array(eventPacket, { minLength: 1, maxLength: 3 }), fc.boolean(), fc.boolean(), ([ip, port, secure], list, binary, asBuffer) => {
      const origin = new URL(`${secure ? 'https' : 'http'}://${ip}:${port}`).origin;
      const pod = backendFor(origin);
      const { pools, remembered } = fakePools([backendFor('http://192.0.2.1:1'), pod]);
      const text = list.map((p) => p.text).join('\x1e');
      onSocketFrame(pools, { url: `${secure ? 'wss' : 'ws'}://${ip}:${port}/socket.io/?EIO=4&transport=websocket` }, { data: asBuffer ? Buffer.from(text) : text, binary });
      assert.deepEqual(remembered.map(([id]) => id), binary ? [] : list.flatMap((p) => p.ids));
      assert.ok(remembered.every(([, b]) => b === pod));
      const { pools: noAffinity, remembered: none } = fakePools([pod], false);
      onSocketFrame(noAffinity, { url: `ws://${ip}:${port}/` }, { data: text, binary: false });
      assert.deepEqual(none, []);
    }),
    { seed: 1602, numRuns: 300 },
  );
});

test('onSocketFrame regression: a target url URL cannot parse is ignored instead of throwing', () => {
  const { pools, remembered } = fakePools([backendFor('http://10.0.0.1:5005')]);
  const data = '42["session_request",{"session_id":"s"}]';
  for (const url of ['ws://', 'ws://[', 'ws://a b', 'wss://x:99999']) assert.doesNotThrow(() => onSocketFrame(pools, { url }, { data, binary: false }));
  assert.equal(remembered.length, 0);
  onSocketFrame(pools, { url: 'ws://10.0.0.1:5005/socket.io/' }, { data, binary: false });
  assert.deepEqual(remembered.map(([id]) => id), ['s']);
});
