/**
 * Hostile battery: hundreds of malformed, odd and abusive requests over raw TCP against the REAL
 * gateway process (dist/src/main.js --config FILE) in front of real emulated Rasa pods, with every
 * feature on: one sticky pool (`affinity: rasa`), the parse cache, `rasaAuth` with a token and an
 * HS256 JWT secret, passive ejection at its defaults, socket.io traffic.
 *
 * The contract every exchange is judged against (see `judge`):
 * - the gateway process never exits;
 * - every answer is well-formed within a few seconds: a clean close with no bytes, or HTTP;
 * - an answer the gateway gives itself (no `x-rasa-pod` / `x-gateway-cache`) is
 *   `{"error":{"code","message"}}` with a code from `errorCatalog` and that entry's status (an unknown
 *   socket.io sid may keep engine.io's `{"code":1,"message":"Session ID unknown"}`, status 400);
 *   parser-level refusals are 400, 431 or 408 in that format, or a clean close;
 * - no body carries a stack trace; no response carries `keep-alive` / `proxy-connection`;
 * - `Connection: close` (and HTTP/1.0) is answered, then the server closes the socket;
 * - `Expect: 100-continue` gets `100 Continue`, then the pod's 200, and the pod never sees `expect`;
 * - nothing the gateway refuses reaches a pod; no pod is ejected and no healthy pod is blamed
 *   (UPSTREAM_*) for client input; in-flight and queue return to zero; good requests work afterwards.
 *
 * Each failing case prints the exact raw request (JSON-escaped, latin1; long runs elided) and the
 * answer; the full list, unabridged, goes to a JSON file whose path is printed. HOSTILE_SEED
 * replays another generation.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { startRasaPod, type RasaPod } from '../src/emulator/rasa-pod.js';
import { errorCatalog } from '../src/errors.js';
import { debugPools, metricValue } from './helpers/harness.js';
import { seeded } from './helpers/tickets.js';
import { startGateway, writeConfig, type Started } from './helpers/process.js';

const TOKEN = 'hostile-token';
const SECRET = 'hostile-jwt-secret';
const SEED = Number(process.env.HOSTILE_SEED ?? 0x5eed);
const CONCURRENCY = 24;
/** Longest wait for one exchange; the gateway's own client timeouts (below) answer well before. */
const WAIT_MS = 4000;
const CLOSE_WAIT_MS = 2000;
const catalog = errorCatalog as Record<string, { status: number; message: string }>;
const catalogStatuses = new Set(Object.values(catalog).map((e) => e.status));
const PARSER_STATUSES = [400, 431, 408];

// ---------------------------------------------------------------------------------------------
// The gateway process and its pods

const pods: RasaPod[] = [];
let configFile = '';
let gw: Started | undefined;
let port = 0;
let adminUrl = '';
/** Every (re)start of the gateway process; more than one means it died on the way. */
const generations: { startedAt: number; exit?: { code: number | null; signal: string | null; output: string } }[] = [];
const reportDir = mkdtempSync(join(tmpdir(), 'hostile-'));

function alive(): boolean {
  return gw !== undefined && gw.child.exitCode === null && gw.child.signalCode === null;
}

/**
 * Warm spare processes (one from the start, two once one died): a process takes about a second to
 * start, and replaying the cases that were in flight when one died may kill several in a row.
 */
const spares: Promise<Started>[] = [];

function spawnGateway(): Promise<Started> {
  const p = startGateway(['--config', configFile]);
  p.catch(() => {});
  return p;
}

const trace = process.env.HOSTILE_TRACE ? (msg: string) => process.stderr.write(`[hostile ${Date.now() % 100000}] ${msg}\n`) : () => {};

async function startGw(waitForCache: boolean): Promise<void> {
  trace(`start (generation ${generations.length + 1}, cache ${waitForCache})`);
  let started: Started;
  if (generations.length === 0) {
    spares.push(spawnGateway());
    started = await spawnGateway();
  } else {
    while (spares.length < 2) spares.push(spawnGateway());
    started = await (spares.shift() as Promise<Started>);
    spares.push(spawnGateway());
    if (started.child.exitCode !== null || started.child.signalCode !== null) started = await spawnGateway();
  }
  const generation: (typeof generations)[number] = { startedAt: Date.now() };
  generations.push(generation);
  started.child.once('exit', (code, signal) => {
    generation.exit = { code, signal, output: started.output() };
  });
  gw = started;
  port = Number(new URL(started.publicUrl).port);
  adminUrl = started.adminUrl;
  trace('started');
  if (waitForCache) await cacheReady();
  trace('ready');
}

/** The cache serves once every pod's model is known (the first /status round). */
async function cacheReady(): Promise<void> {
  const until = Date.now() + 5000;
  while (Date.now() < until && alive()) {
    const r = await fetch(`http://127.0.0.1:${port}/model/parse?token=${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"warm-up"}' });
    await r.arrayBuffer();
    if (r.headers.get('x-gateway-cache')) return;
    await sleep(50);
  }
}

/** Restarts the gateway if it died, so later cases still say something; the death is reported. */
async function ensureAlive(waitForCache = true): Promise<void> {
  if (!alive()) await startGw(waitForCache);
}

/** Requests that reached any pod, the gateway's own model polls (`GET /status`) aside. */
function podTraffic(): number {
  return pods.reduce((n, p) => n + p.requestsSeen - (p.seenByPath.get('GET /status') ?? 0), 0);
}

function recentPodRequests(sinceSeen: number[]): string[] {
  const out: string[] = [];
  pods.forEach((p, i) => {
    const n = p.requestsSeen - (sinceSeen[i] ?? 0);
    if (n <= 0) return;
    for (const r of p.recentRequests.slice(-Math.min(n, 200))) {
      if (r.method === 'GET' && r.url.startsWith('/status')) continue;
      out.push(`${p.name}: ${r.method} ${r.url.slice(0, 200)}`);
    }
  });
  return out;
}

async function scrape(): Promise<string> {
  const res = await fetch(`${adminUrl}/metrics`);
  return res.text();
}

interface EngineSession {
  close(discard?: boolean): void;
  transport?: { shouldClose?: () => void };
}
const engineSessions = new Set<EngineSession>();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

before(async () => {
  for (let i = 0; i < 3; i++) pods.push(await startRasaPod({ name: `hostile-${i}`, slots: 4, serviceTimeMs: 5 }));
  for (const p of pods) p.io.engine.on('connection', (session: EngineSession) => engineSessions.add(session));
  configFile = writeConfig(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
log: { level: error }
limits: { headersTimeoutMs: 800, requestTimeoutMs: 1500, maxHeaderBytes: 8192, maxHeadersCount: 50 }
publicRoutes: ['/conversations/*']
pools:
  rasa:
    endpoints: [${pods.map((p) => p.url).join(', ')}]
    affinity: rasa
    slotsPerEndpoint: 4
    bodyLimitBytes: 65536
    cache: { maxEntries: 1000, ttlMs: 60000, modelPollMs: 1000 }
    rasaAuth: { token: ${TOKEN}, jwtSecret: ${SECRET}, jwtAlgorithm: HS256 }
`);
  await startGw(true);
});

after(async () => {
  if (gw && alive()) {
    gw.child.kill('SIGKILL');
    await gw.exited;
  }
  for (const spare of spares.splice(0)) {
    const s = await spare.catch(() => undefined);
    if (s && s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
  }
  // The raw engine.io sessions the battery opened hold ref'd timers (connect timeout, orderly close):
  // discard them with the pods, or this file outlives its tests by half a minute.
  for (const session of engineSessions) {
    session.close(true);
    session.transport?.shouldClose?.();
  }
  await Promise.all(pods.map((p) => p.close()));
  trace('after done');
});

// ---------------------------------------------------------------------------------------------
// Raw exchanges

type Part = string | Buffer | { pauseMs: number } | { awaitContinue: true };

interface Case {
  /** Short label shown in reports. */
  name: string;
  parts: Part[];
  /** `refuse`: the gateway must answer it itself (4xx) or close; it must not reach a pod. */
  expect: 'refuse' | 'any';
  /** A refusal by the HTTP parser: 400 / 431 / 408 or a clean close. */
  parserLevel?: boolean;
  head?: boolean;
  /** Final responses to wait for (pipelining). */
  finals?: number;
  /** Connection: close or HTTP/1.0: the server must close the socket after answering. */
  watchClose?: boolean;
  /** We hang up after sending; only the gateway's health is judged. */
  abandon?: boolean;
  allowUpgrade?: boolean;
  /** A socket.io request whose sid is unknown: status 400 required, engine.io's body allowed. */
  unknownSid?: boolean;
  expectStatus?: number;
  waitMs?: number;
  check?: (ex: Exchange) => string[];
}

interface Resp {
  status: number;
  statusLine: string;
  headers: [string, string][];
  body: Buffer;
  complete: boolean;
}

interface Exchange {
  sent: Buffer;
  received: Buffer;
  responses: Resp[];
  parseError: string | undefined;
  connected: boolean;
  connectError: string | undefined;
  serverClosed: boolean;
  /** ms from the end of the last final response to the server's close (undefined: no close seen). */
  closeAfterMs: number | undefined;
  timedOut: boolean;
  ms: number;
  crashed?: string;
}

function header(r: Resp, name: string): string[] {
  return r.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
}

const isFinal = (r: Resp) => r.status >= 200 || r.status === 101;

/** Parses the bytes a server sent as a sequence of HTTP/1.x responses. */
function parseResponses(buf: Buffer, closed: boolean, head: boolean): { responses: Resp[]; error?: string; finals: number; upgraded: boolean } {
  const responses: Resp[] = [];
  let pos = 0;
  let finals = 0;
  while (pos < buf.length) {
    const end = buf.indexOf('\r\n\r\n', pos, 'latin1');
    if (end === -1) {
      const start = buf.subarray(pos, pos + 8).toString('latin1');
      if (!'HTTP/1.'.startsWith(start.slice(0, 7)) && !start.startsWith('HTTP/1.')) return { responses, error: `bytes that are not an HTTP response: ${show(buf.subarray(pos, pos + 80))}`, finals, upgraded: false };
      if (closed) return { responses, error: 'the server closed in the middle of a response head', finals, upgraded: false };
      break;
    }
    const lines = buf.subarray(pos, end).toString('latin1').split('\r\n');
    const statusLine = lines[0] as string;
    const m = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/.exec(statusLine);
    if (!m) return { responses, error: `bad status line ${JSON.stringify(statusLine)}`, finals, upgraded: false };
    const status = Number(m[1]);
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const h = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(line);
      if (!h) return { responses, error: `bad header line ${JSON.stringify(line)}`, finals, upgraded: false };
      headers.push([h[1] as string, h[2] as string]);
    }
    pos = end + 4;
    const r: Resp = { status, statusLine, headers, body: Buffer.alloc(0), complete: false };
    responses.push(r);
    if (status === 101) {
      r.complete = true;
      finals++;
      return { responses, finals, upgraded: true };
    }
    if (status < 200 || status === 204 || status === 304 || head) {
      r.complete = true;
      if (status >= 200) finals++;
      continue;
    }
    const te = header(r, 'transfer-encoding').join(',').toLowerCase();
    const cl = header(r, 'content-length');
    if (te.includes('chunked')) {
      const chunks: Buffer[] = [];
      let p = pos;
      let done = false;
      for (;;) {
        const eol = buf.indexOf('\r\n', p, 'latin1');
        if (eol === -1) break;
        const sizeText = buf.subarray(p, eol).toString('latin1').split(';')[0]!.trim();
        if (!/^[0-9a-fA-F]+$/.test(sizeText)) return { responses, error: `bad chunk size ${JSON.stringify(sizeText)}`, finals, upgraded: false };
        const size = parseInt(sizeText, 16);
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n', eol + 2, 'latin1');
          if (trailerEnd === -1) break;
          if (trailerEnd !== eol + 2) {
            const tEnd = buf.indexOf('\r\n\r\n', eol + 2, 'latin1');
            if (tEnd === -1) break;
            p = tEnd + 4;
          } else p = trailerEnd + 2;
          done = true;
          break;
        }
        if (eol + 2 + size + 2 > buf.length) break;
        chunks.push(buf.subarray(eol + 2, eol + 2 + size));
        if (buf.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') return { responses, error: 'chunk data not followed by CRLF', finals, upgraded: false };
        p = eol + 4 + size;
      }
      r.body = Buffer.concat(chunks);
      if (!done) break;
      r.complete = true;
      finals++;
      pos = p;
    } else if (cl.length > 0) {
      if (new Set(cl).size > 1 || !/^\d+$/.test(cl[0] as string)) return { responses, error: `bad content-length ${JSON.stringify(cl)}`, finals, upgraded: false };
      const len = Number(cl[0]);
      r.body = buf.subarray(pos, Math.min(buf.length, pos + len));
      if (pos + len > buf.length) break;
      r.complete = true;
      finals++;
      pos += len;
    } else {
      r.body = buf.subarray(pos);
      pos = buf.length;
      if (closed) {
        r.complete = true;
        finals++;
      }
    }
  }
  return { responses, finals, upgraded: false };
}

function exchange(c: Case): Promise<Exchange> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let received = Buffer.alloc(0);
    const sent: Buffer[] = [];
    let connected = false;
    let connectError: string | undefined;
    let serverClosed = false;
    let finished = false;
    let finalAt: number | undefined;
    let closedAt: number | undefined;
    let parsed: ReturnType<typeof parseResponses> = { responses: [], finals: 0, upgraded: false };
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(overall);
      socket.destroy();
      parsed = parseResponses(received, serverClosed, c.head ?? false);
      resolve({
        sent: Buffer.concat(sent),
        received,
        responses: parsed.responses,
        parseError: parsed.error,
        connected,
        connectError,
        serverClosed,
        closeAfterMs: serverClosed && finalAt !== undefined && closedAt !== undefined ? closedAt - finalAt : undefined,
        timedOut,
        ms: Date.now() - startedAt,
      });
    };
    const overall = setTimeout(() => finish(true), c.waitMs ?? WAIT_MS);
    const evaluate = () => {
      if (finished) return;
      parsed = parseResponses(received, serverClosed, c.head ?? false);
      if (serverClosed || parsed.error || parsed.upgraded) return finish(false);
      if (parsed.finals >= (c.finals ?? 1)) {
        if (!c.watchClose) return finish(false);
        if (finalAt === undefined) {
          finalAt = Date.now();
          setTimeout(() => finish(false), CLOSE_WAIT_MS);
        }
      }
    };
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      evaluate();
    });
    const onClose = () => {
      if (finished) return;
      serverClosed = true;
      closedAt = Date.now();
      if (finalAt === undefined && parseResponses(received, true, c.head ?? false).finals >= (c.finals ?? 1)) finalAt = closedAt;
      evaluate();
    };
    socket.on('end', onClose);
    socket.on('close', onClose);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) connectError = err.code ?? err.message;
    });
    socket.on('connect', () => {
      connected = true;
      void (async () => {
        for (const part of c.parts) {
          if (finished || serverClosed) return;
          if (typeof part === 'string' || Buffer.isBuffer(part)) {
            const b = typeof part === 'string' ? Buffer.from(part, 'latin1') : part;
            sent.push(b);
            socket.write(b);
          } else if ('pauseMs' in part) {
            await sleep(part.pauseMs);
          } else {
            const until = Date.now() + 1500;
            while (!finished && Date.now() < until && !/^HTTP\/1\.[01] 1\d\d/m.test(received.toString('latin1'))) await sleep(5);
          }
        }
        if (c.abandon) {
          await sleep(30);
          finish(false);
        }
      })();
    });
  });
}

const answered = (c: Case, ex: Exchange) => ex.responses.filter((r) => isFinal(r) && r.complete).length >= (c.finals ?? 1);

async function runConcurrent(cases: Case[], concurrency: number, into: Map<Case, Exchange>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, cases.length) }, async () => {
      while (next < cases.length) {
        const c = cases[next++] as Case;
        into.set(c, await exchange(c));
      }
    }),
  );
}

function crashSummary(): string {
  const exit = generations[generations.length - 1]?.exit;
  const out = exit?.output ?? '';
  const error = /^\w*(Error|Exception)\b[^\n]*$/m.exec(out)?.[0] ?? out.trim().split('\n').at(-1) ?? '';
  const frame = (/^\s+at [^\n]*\/dist\/src\/[^\n]*$/m.exec(out) ?? /^\s+at [^\n]*$/m.exec(out))?.[0]?.trim() ?? '';
  return `exit code ${exit?.code ?? '?'}${exit?.signal ? ` signal ${exit.signal}` : ''}: ${error}${frame ? ` (${frame})` : ''}`;
}

/**
 * Runs cases `concurrency` at a time. If the gateway dies meanwhile, the cases that were in flight are
 * replayed one by one on a fresh process (the ones that kill it again are the culprits); the cases
 * that never got through go round again.
 */
async function runBatch(cases: Case[], concurrency = CONCURRENCY): Promise<Map<Case, Exchange>> {
  const results = new Map<Case, Exchange>();
  let pending = cases;
  let restarted = false;
  while (pending.length > 0) {
    const generation = generations.length;
    const round = new Map<Case, Exchange>();
    await runConcurrent(pending, concurrency, round);
    await sleep(30);
    if (alive() && generations.length === generation) {
      for (const [c, ex] of round) results.set(c, ex);
      break;
    }
    restarted = true;
    trace(`died in a round of ${pending.length}`);
    const undelivered = pending.filter((c) => !(round.get(c) as Exchange).connected);
    const inFlight = pending.filter((c) => (round.get(c) as Exchange).connected && !answered(c, round.get(c) as Exchange));
    for (const c of pending) if (!undelivered.includes(c) && !inFlight.includes(c)) results.set(c, round.get(c) as Exchange);
    for (const c of inFlight) {
      await ensureAlive(false);
      const before = generations.length;
      const ex = await exchange(c);
      for (let i = 0; i < 20 && alive() && !answered(c, ex); i++) await sleep(10);
      if (!alive() && generations.length === before) ex.crashed = crashSummary();
      results.set(c, ex);
    }
    await ensureAlive(false);
    pending = undelivered;
  }
  if (restarted) {
    await ensureAlive(false);
    await cacheReady();
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Judging

interface Violation {
  kind: string;
  caseName: string;
  request: Buffer | undefined;
  response: string;
}

/** A byte string as a JS string literal, bytes above 0x7e as \xNN; long ones with the middle elided. */
function show(b: Buffer | string, max = 600): string {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  const lit = (x: string) => JSON.stringify(x).replace(/[\u007f-\u00ff]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  if (s.length <= max) return lit(s);
  const head = Math.floor(max * 0.7);
  const tail = Math.floor(max * 0.2);
  return `${lit(s.slice(0, head))} …[${s.length - head - tail} more bytes]… ${lit(s.slice(-tail))}`;
}

function summary(ex: Exchange | undefined): string {
  if (!ex) return '(no exchange)';
  const parts: string[] = [];
  if (ex.connectError) parts.push(`connect error ${ex.connectError}`);
  for (const r of ex.responses) {
    const keep = r.headers.filter(([k]) => /^(connection|keep-alive|proxy-connection|content-type|x-rasa-pod|x-gateway-cache|transfer-encoding|content-length)$/i.test(k));
    parts.push(`${r.statusLine} [${keep.map(([k, v]) => `${k}: ${v}`).join('; ')}] ${show(r.body, 300)}`);
  }
  if (ex.responses.length === 0) parts.push(ex.received.length ? `raw ${show(ex.received, 300)}` : 'no bytes');
  parts.push(ex.serverClosed ? `server closed${ex.closeAfterMs !== undefined ? ` ${ex.closeAfterMs} ms after the answer` : ''}` : ex.timedOut ? `nothing more within ${ex.ms} ms` : 'socket left open');
  if (ex.crashed) parts.push(`CRASH: ${ex.crashed}`);
  return parts.join(' | ');
}

function bodyShape(body: unknown, raw: Buffer): string {
  if (body === undefined) return raw.length === 0 ? 'empty body' : `non-JSON body ${show(raw, 60)}`;
  if (body === null || typeof body !== 'object') return `JSON ${show(JSON.stringify(body), 40)}`;
  const o = body as Record<string, unknown>;
  const norm = (s: string) => s.replace(/'[^']*'/g, "'…'").replace(/Route \S+ not found/, 'Route … not found').slice(0, 50);
  return `keys {${Object.keys(o).join(',')}}${typeof o.code === 'string' ? ` code ${o.code}` : ''}${typeof o.message === 'string' ? ` message "${norm(o.message)}"` : ''}`;
}

const stackPatterns = [/^\s{2,}at \S/m, /\/dist\//, /node:internal/, /node_modules\//, /\.js:\d+:\d+/];

/** Every contract violation of one exchange (see the file comment). */
const OWN_KEEP_ALIVE = 'timeout=72';

function judge(c: Case, ex: Exchange): string[] {
  const v: string[] = [];
  if (ex.crashed) v.push(`CRASH: this request makes the gateway process exit (${ex.crashed.replace(/file:\/\/\S+\//g, '').replace(/:\d+:\d+/g, '')})`);
  if (!ex.connected) {
    v.push(`could not connect (${ex.connectError ?? 'unknown'}): the gateway was down`);
    return v;
  }
  if (c.abandon) return v;
  if (ex.parseError) v.push(`malformed response bytes: ${ex.parseError.slice(0, 80)}`);
  const finals = ex.responses.filter((r) => isFinal(r));
  const completeFinals = finals.filter((r) => r.complete);
  if (completeFinals.length === 0) {
    if (!ex.serverClosed && ex.responses.length === 0) v.push(`no answer and no close within ${c.waitMs ?? WAIT_MS} ms`);
    else if (!ex.serverClosed) v.push(`incomplete answer after ${ex.ms} ms`);
    else if (ex.received.length > 0 && !ex.parseError && finals.length > 0) v.push('the server closed in the middle of an answer');
  } else if (completeFinals.length < (c.finals ?? 1) && !ex.serverClosed) {
    v.push(`only ${completeFinals.length} of ${c.finals} pipelined answers`);
  }
  for (const r of ex.responses) {
    const proxied = header(r, 'x-rasa-pod').length > 0 || header(r, 'x-gateway-cache').length > 0;
    const who = header(r, 'x-rasa-pod').length > 0 ? "a pod's proxied" : proxied ? 'a parse-cache' : "the gateway's own";
    // Node's own `Keep-Alive: timeout=72` (fastify's keepAliveTimeout) describes the gateway's connection to
    // this client and is fine while it stays open; any other value is a pod's, passed through.
    for (const value of header(r, 'keep-alive')) {
      if (value !== OWN_KEEP_ALIVE || c.watchClose) v.push(`${who} response carries a keep-alive header (keep-alive: ${value})`);
    }
    for (const value of header(r, 'proxy-connection')) v.push(`${who} response carries a proxy-connection header (${value})`);
    const text = r.body.toString('utf8');
    if (stackPatterns.some((p) => p.test(text))) v.push(`${who} response body leaks a stack trace or file path`);
    if (r.status === 101 && c.unknownSid) v.push('websocket upgrade with an unknown socket.io sid accepted (101), not refused with 400');
    else if (r.status === 101 && !c.allowUpgrade) v.push('101 Switching Protocols to a handshake that had to be refused');
    if (r.status < 200) continue;
    if (c.expectStatus !== undefined && r.status !== c.expectStatus) v.push(`status ${r.status}, expected ${c.expectStatus}`);
    if (c.unknownSid && r.status !== 400) v.push(`unknown socket.io sid answered ${r.status}, not 400`);
    if (proxied) {
      if (c.expect === 'refuse') v.push(`must be refused by the gateway, but pod ${header(r, 'x-rasa-pod')[0] ?? '(cache)'} answered ${r.status}`);
      continue;
    }
    // The gateway answered itself.
    if (c.expect === 'refuse') {
      if (c.parserLevel && !PARSER_STATUSES.includes(r.status)) v.push(`parser-level refusal answered ${r.status} (allowed: 400, 431, 408 or a clean close)`);
      else if (r.status < 400 || r.status >= 500) v.push(`a request to refuse was answered ${r.status} by the gateway`);
    }
    if (c.head) {
      if (!catalogStatuses.has(r.status) && r.status >= 300) v.push(`the gateway answered HEAD with ${r.status}, a status no catalog entry has`);
      continue;
    }
    if (!r.complete) continue;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const o = body as { code?: unknown; message?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
    const engineSid = o !== undefined && o !== null && o.code === 1 && o.message === 'Session ID unknown';
    if (engineSid) {
      if (r.status !== 400) v.push(`engine.io "Session ID unknown" with status ${r.status}, not 400`);
      if (o.error !== undefined && o.error?.code !== 'SESSION_UNKNOWN') v.push(`"Session ID unknown" with error.code ${String(o.error?.code)}, not SESSION_UNKNOWN`);
      continue;
    }
    const err = o !== null && typeof o === 'object' ? o.error : undefined;
    if (!err || typeof err !== 'object' || typeof err.code !== 'string' || typeof err.message !== 'string') {
      v.push(`the gateway answered ${r.status} itself without the {"error":{"code","message"}} body (${bodyShape(body, r.body)})`);
      continue;
    }
    const entry = catalog[err.code];
    if (!entry) v.push(`error code ${err.code} (status ${r.status}) is not in errorCatalog`);
    else if (entry.status !== r.status) v.push(`status ${r.status} does not match errorCatalog.${err.code}.status ${entry.status}`);
    if (err.code.startsWith('UPSTREAM_')) v.push(`${err.code} while every pod is healthy: client input was blamed on a pod (it counts toward ejection)`);
  }
  if (c.watchClose && completeFinals.length > 0) {
    const last = completeFinals[completeFinals.length - 1] as Resp;
    if (header(last, 'connection').some((x) => /keep-alive/i.test(x))) v.push('answer to a closing request says "connection: keep-alive"');
    if (!ex.serverClosed) v.push(`the server did not close the socket within ${CLOSE_WAIT_MS} ms of answering a closing request`);
  }
  if (c.check) v.push(...c.check(ex));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Groups: one shared process, checks after every group

/** Ejections and endpoints out of `ready` seen at the end of each group (a restart resets the metrics). */
const clientEjections: string[] = [];
const notReadyAfter: string[] = [];

interface GroupResult {
  violations: Violation[];
  notes: string[];
  exchanges: number;
}

async function runGroup(t: TestContext, group: string, cases: Case[], extra?: (add: (v: Violation) => void, notes: string[]) => Promise<void>): Promise<void> {
  await ensureAlive();
  const firstGeneration = generations.length;
  const result: GroupResult = { violations: [], notes: [], exchanges: 0 };
  const slowest: { name: string; ms: number }[] = [];
  const groupStarted = Date.now();
  const add = (v: Violation) => result.violations.push(v);
  const ejectionsBefore = metricValue(await scrape(), 'gateway_ejections_total') ?? 0;
  const readyBefore = new Set((await debugPools(adminUrl))[0]!.endpoints.filter((e) => e.state === 'ready').map((e) => e.url));

  // Refusals alone first, so that any pod traffic meanwhile is theirs.
  const refused = cases.filter((c) => c.expect === 'refuse');
  const others = cases.filter((c) => c.expect !== 'refuse');
  for (const batch of [refused, others]) {
    if (batch.length === 0) continue;
    const seenBefore = pods.map((p) => p.requestsSeen);
    const trafficBefore = podTraffic();
    const results = await runBatch(batch);
    result.exchanges += batch.length;
    slowest.push(...[...results].map(([c, ex]) => ({ name: c.name, ms: ex.ms })));
    for (const c of batch) {
      const ex = results.get(c) as Exchange;
      for (const kind of judge(c, ex)) add({ kind, caseName: c.name, request: ex.sent.length ? ex.sent : partsBytes(c.parts), response: summary(ex) });
    }
    if (batch === refused) {
      await sleep(100);
      const reached = podTraffic() - trafficBefore;
      if (reached > 0) {
        add({ kind: `${reached} request(s) the gateway had to refuse reached a pod`, caseName: '(batch of refusals)', request: undefined, response: recentPodRequests(seenBefore).slice(0, 20).join('\n      ') });
      }
    }
  }
  if (extra) await extra(add, result.notes);

  // After every group: process alive, no ejection, endpoints ready, nothing leaked.
  if (generations.length > firstGeneration || !alive()) {
    const deaths = generations.slice(firstGeneration - 1).filter((g) => g.exit);
    add({ kind: `the gateway process exited ${deaths.length} time(s) during this group (restarted to go on)`, caseName: group, request: undefined, response: deaths.map((d) => `code ${d.exit?.code} signal ${d.exit?.signal}: ${(d.exit?.output ?? '').slice(-600)}`).join('\n      ') });
    await ensureAlive();
  }
  const text = await scrape();
  const ejected = (metricValue(text, 'gateway_ejections_total') ?? 0) - (generations.length > firstGeneration ? 0 : ejectionsBefore);
  if (ejected > 0) clientEjections.push(`${group}: +${ejected}`);
  if (ejected > 0) add({ kind: `gateway_ejections_total rose by ${ejected}: client behaviour ejected a pod`, caseName: group, request: undefined, response: metricLines(text, 'gateway_ejections_total') });
  const view = (await debugPools(adminUrl))[0]!;
  const notReady = view.endpoints.filter((e) => e.state !== 'ready' && readyBefore.has(e.url));
  if (notReady.length > 0) notReadyAfter.push(`${group}: ${notReady.map((e) => `${e.pod} ${e.state}`).join(', ')}`);
  if (notReady.length > 0) add({ kind: 'an endpoint left state ready', caseName: group, request: undefined, response: notReady.map((e) => `${e.pod} ${e.url}: ${e.state}`).join(', ') });
  const leak = await settledWithin(5000);
  if (leak) add({ kind: 'in-flight or queue did not return to zero', caseName: group, request: undefined, response: leak });
  const internal = metricLines(text, 'gateway_internal_errors_total');
  if (internal) result.notes.push(`gateway_internal_errors_total: ${internal}`);
  const rejected = metricLines(text, 'gateway_rejected_total');
  if (rejected) result.notes.push(`rejections so far: ${rejected.replace(/\n/g, '; ')}`);

  slowest.sort((a, b) => b.ms - a.ms);
  t.diagnostic(`${group}: ${result.exchanges} raw exchanges in ${Date.now() - groupStarted} ms, ${result.violations.length} violation(s); slowest: ${slowest.slice(0, 3).map((x) => `${x.name} ${x.ms} ms`).join(', ')}`);
  for (const n of result.notes) t.diagnostic(n);
  report(group, result);
}

function partsBytes(parts: Part[]): Buffer {
  return Buffer.concat(parts.filter((p): p is string | Buffer => typeof p === 'string' || Buffer.isBuffer(p)).map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
}

function metricLines(text: string, name: string): string {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

async function settledWithin(ms: number): Promise<string | undefined> {
  const until = Date.now() + ms;
  let last = '';
  while (Date.now() < until) {
    const pools = await debugPools(adminUrl);
    if (pools.every((p) => p.inflight === 0 && p.queueLength === 0 && p.endpoints.every((e) => e.inflight === 0))) return undefined;
    last = JSON.stringify(pools.map((p) => ({ inflight: p.inflight, queue: p.queueLength, endpoints: p.endpoints.map((e) => e.inflight) })));
    await sleep(50);
  }
  return last;
}

function report(group: string, result: GroupResult): void {
  if (result.violations.length === 0) return;
  const file = join(reportDir, `${group.replace(/\W+/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      result.violations.map((v) => ({ kind: v.kind, case: v.caseName, request: v.request?.toString('latin1'), response: v.response })),
      null,
      1,
    ),
  );
  const byKind = new Map<string, Violation[]>();
  for (const v of result.violations) byKind.set(v.kind, [...(byKind.get(v.kind) ?? []), v]);
  const lines = [`${group}: ${result.violations.length} violation(s) of ${byKind.size} kind(s) in ${result.exchanges} exchanges (all of them, unabridged: ${file})`];
  for (const [kind, list] of byKind) {
    lines.push('', `✗ ${kind} — ${list.length} case(s)`);
    for (const v of list.slice(0, 6)) {
      lines.push(`    [${v.caseName}]`);
      if (v.request) lines.push(`      request:  ${show(v.request)}`);
      lines.push(`      answer:   ${v.response}`);
    }
    if (list.length > 6) lines.push(`    … and ${list.length - 6} more: ${list.slice(6, 40).map((v) => v.caseName).join(', ')}${list.length > 40 ? ', …' : ''}`);
  }
  assert.fail(lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Request builders and generators

const HOST = 'gateway.test';

function http(method: string, target: string, o: { headers?: string[]; body?: string | Buffer; version?: string; host?: string | null; length?: boolean } = {}): Buffer {
  const lines = [`${method} ${target} ${o.version ?? 'HTTP/1.1'}`];
  if (o.host !== null) lines.push(`Host: ${o.host ?? HOST}`);
  lines.push(...(o.headers ?? []));
  const body = o.body === undefined ? undefined : typeof o.body === 'string' ? Buffer.from(o.body, 'utf8') : o.body;
  if (body && o.length !== false) lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body ?? Buffer.alloc(0)]);
}

const json = (path: string, body: string | Buffer, headers: string[] = [], o: { version?: string; host?: string | null } = {}) =>
  http('POST', path, { headers: ['Content-Type: application/json', ...headers], body, ...o });

const PARSE_OK = `/model/parse?token=${TOKEN}`;
const hello = (n: number | string) => JSON.stringify({ text: `hello ${n}` });
const hook = (sender: string, message = 'hi') => JSON.stringify({ sender, message });

/** A small seeded PRNG (mulberry32), so every run sends the same bytes. */
const prng = seeded;

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

function jwt(headerJson: string, payloadJson: string, secret: string | undefined = SECRET, hash = 'sha256'): string {
  const h = b64url(headerJson);
  const p = b64url(payloadJson);
  const sig = secret === undefined ? '' : createHmac(hash, secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

const refuse = (name: string, parts: Part[], more: Partial<Case> = {}): Case => ({ name, parts, expect: 'refuse', ...more });
const parserRefuse = (name: string, parts: Part[], more: Partial<Case> = {}): Case => ({ name, parts, expect: 'refuse', parserLevel: true, ...more });
const any = (name: string, parts: Part[], more: Partial<Case> = {}): Case => ({ name, parts, expect: 'any', ...more });

function framingCases(): Case[] {
  const rnd = prng(SEED ^ 0x1111);
  const cases: Case[] = [];
  // Request lines the parser must refuse.
  const badLines = [
    'GET',
    'GET /version',
    'GET /version HTTP/1.1 extra',
    'GET /version HTTP/9.9',
    'GET /version HTTP/1.1x',
    'GET /version HTTP/2.0',
    'GET /version http/1.1',
    'GET /version HTTP/1.',
    'GET /version HTTP/',
    'GET /ver sion HTTP/1.1',
    'GET /version\tHTTP/1.1',
    ' GET /version HTTP/1.1',
    'GET /version HTTP/1.1\x00',
    'GET /ver\x00sion HTTP/1.1',
    'GET /ver\x7fsion HTTP/1.1',
    'GET /ver\x01sion HTTP/1.1',
    'G\x00T /version HTTP/1.1',
    '/version HTTP/1.1',
    'GET HTTP/1.1',
    'GET model/parse HTTP/1.1',
    'PRI * HTTP/2.0',
  ];
  for (const line of badLines) cases.push(parserRefuse(`bad request line ${JSON.stringify(line)}`, [`${line}\r\nHost: ${HOST}\r\n\r\n`]));
  cases.push(parserRefuse('TLS ClientHello on the plain port', [Buffer.from('16030100a1010000 9d0303'.replace(/ /g, ''), 'hex'), Buffer.alloc(40, 0x41)]));
  cases.push(parserRefuse('SSH banner', ['SSH-2.0-OpenSSH_9.6\r\n']));
  cases.push(parserRefuse('HTTP/2 prior-knowledge preface', ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n']));
  cases.push(parserRefuse('only CRLFs, then silence', ['\r\n\r\n\r\n']));
  for (let i = 0; i < 8; i++) {
    const bytes = Buffer.from(Array.from({ length: 16 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
    cases.push(parserRefuse(`random binary #${i}`, [bytes]));
  }
  // Bare LF / bare CR line endings.
  cases.push(any('bare LF everywhere', [`GET /version HTTP/1.1\nHost: ${HOST}\n\n`]));
  cases.push(any('bare LF after the request line', [`GET /version HTTP/1.1\nHost: ${HOST}\r\n\r\n`]));
  cases.push(any('bare LF ending the head', [`GET /version HTTP/1.1\r\nHost: ${HOST}\r\n\n`]));
  cases.push(any('bare LF inside a POST', [`POST ${PARSE_OK} HTTP/1.1\nHost: ${HOST}\nContent-Type: application/json\nContent-Length: 15\n\n${hello(1)}`]));
  cases.push(parserRefuse('bare CR line endings', [`GET /version HTTP/1.1\rHost: ${HOST}\r\r`]));
  cases.push(parserRefuse('bare CR inside a header value', [`GET /version HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\rb\r\n\r\n`]));
  cases.push(parserRefuse('LF inside a header value', [`GET /version HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\nX-B: b\r\n\r\n`], { expect: 'any', parserLevel: false }));
  // Host.
  cases.push(parserRefuse('HTTP/1.1 GET without Host', [http('GET', '/version', { host: null })]));
  cases.push(parserRefuse('HTTP/1.1 POST /model/parse without Host', [http('POST', PARSE_OK, { host: null, headers: ['Content-Type: application/json'], body: hello(2) })]));
  cases.push(parserRefuse('HTTP/1.1 webhook without Host', [http('POST', '/webhooks/rest/webhook', { host: null, headers: ['Content-Type: application/json'], body: hook('nohost') })]));
  cases.push(any('empty Host', [http('GET', '/version', { host: '' })]));
  cases.push(any('two different Host headers', [http('GET', '/version', { headers: ['Host: evil.test'] })]));
  cases.push(any('Host with spaces', [http('GET', '/version', { host: 'a b c' })]));
  cases.push(any('Host with a path', [http('GET', '/version', { host: 'evil.test/x?y' })]));
  cases.push(any('HTTP/1.0 without Host', [http('GET', '/version', { host: null, version: 'HTTP/1.0' })], { watchClose: true }));
  // Content-Length and Transfer-Encoding together, and odd Transfer-Encodings.
  const chunked = (body: string) => `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
  const te = (name: string, headers: string[], body: string, target = PARSE_OK) =>
    parserRefuse(name, [`POST ${target} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\n${headers.join('\r\n')}\r\n\r\n${body}`]);
  cases.push(te('Content-Length then Transfer-Encoding', ['Content-Length: 15', 'Transfer-Encoding: chunked'], chunked(hello(3))));
  cases.push(te('Transfer-Encoding then Content-Length', ['Transfer-Encoding: chunked', 'Content-Length: 15'], chunked(hello(3))));
  cases.push(te('Transfer-Encoding and Content-Length: 0', ['Transfer-Encoding: chunked', 'Content-Length: 0'], chunked(hello(3))));
  cases.push(te('CL + TE on the webhook', ['Content-Length: 5', 'Transfer-Encoding: chunked'], chunked(hook('smuggle')), '/webhooks/rest/webhook'));
  cases.push(te('CL + TE with a smuggled request behind', ['Content-Length: 4', 'Transfer-Encoding: chunked'], `0\r\n\r\nGET /domain HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
  cases.push(te('Transfer-Encoding: gzip only', ['Transfer-Encoding: gzip'], 'xxxx'));
  cases.push(te('Transfer-Encoding: chunked, gzip', ['Transfer-Encoding: chunked, gzip'], chunked(hello(4))));
  cases.push(te('Transfer-Encoding: xchunked', ['Transfer-Encoding: xchunked'], chunked(hello(4))));
  cases.push(te('Transfer-Encoding: chunked twice', ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], chunked(hello(4))));
  cases.push(te('Transfer-Encoding: chunked, chunked', ['Transfer-Encoding: chunked, chunked'], chunked(hello(4))));
  cases.push(any('Transfer-Encoding: Chunked (case)', [`POST ${PARSE_OK} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: Chunked\r\n\r\n${chunked(hello(5))}`]));
  cases.push(any('a good chunked parse', [`POST ${PARSE_OK} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(hello(6))}`]));
  cases.push(any('a good chunked webhook', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(hook('chunky'))}`]));
  cases.push(any('a good chunked parse, uncached', [`POST /model/parse HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(hello(7))}`]));
  cases.push(any('HTTP/1.0 with chunked', [`POST ${PARSE_OK} HTTP/1.0\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(hello(8))}`]));
  // Bad chunk sizes.
  const chunkHead = `POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
  for (const [name, bodyText] of [
    ['non-hex size', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['negative size', '-1\r\nhello\r\n0\r\n\r\n'],
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['plus sign', '+5\r\nhello\r\n0\r\n\r\n'],
    ['overflowing size', 'ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n'],
    ['leading space', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['empty size line', '\r\nhello\r\n0\r\n\r\n'],
    ['data longer than size', '3\r\nhello\r\n0\r\n\r\n'],
    ['no CRLF after data', '5\r\nhelloXX0\r\n\r\n'],
    ['NUL in extension', '5;ext=\x00\r\nhello\r\n0\r\n\r\n'],
    ['bare LF after size', '5\nhello\r\n0\r\n\r\n'],
  ] as const) {
    cases.push(parserRefuse(`chunked: ${name}`, [chunkHead + bodyText]));
  }
  cases.push(any('chunked: trailing space after size', [`${chunkHead}5 \r\nhello\r\n0\r\n\r\n`]));
  cases.push(any('chunked: extension', [`${chunkHead}5;name=value\r\nhello\r\n0\r\n\r\n`]));
  cases.push(any('chunked: trailer fields', [`${chunkHead}${hook('trailer').length.toString(16)}\r\n${hook('trailer')}\r\n0\r\nX-Trailer: 1\r\n\r\n`]));
  cases.push(parserRefuse('chunked: no last chunk, then silence', [`${chunkHead}5\r\nhello\r\n`]));
  cases.push(parserRefuse('chunked: last chunk without the final CRLF', [`${chunkHead}0\r\n`]));
  // Content-Length oddities.
  const clHead = (values: string[], body = hello(9)) => `POST ${PARSE_OK} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\n${values.map((v) => `Content-Length: ${v}`).join('\r\n')}\r\n\r\n${body}`;
  cases.push(parserRefuse('two different Content-Length', [clHead(['15', '16'])]));
  cases.push(parserRefuse('two different Content-Length, larger first', [clHead(['16', '15'])]));
  cases.push(parserRefuse('Content-Length list of different values', [clHead(['15, 16'])]));
  cases.push(parserRefuse('Content-Length two different on the webhook', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 3\r\nContent-Length: 29\r\n\r\n${hook('dupcl')}`]));
  cases.push(any('two equal Content-Length', [clHead(['15', '15'])]));
  cases.push(any('Content-Length list of equal values', [clHead(['15, 15'])]));
  for (const v of ['-1', '+15', '15.0', '0x0f', '1e1', 'abc', '', '15 15', '99999999999999999999999', '1 5']) {
    cases.push(parserRefuse(`Content-Length: ${JSON.stringify(v)}`, [clHead([v])]));
  }
  // Pipelining.
  const v = http('GET', '/version');
  cases.push(any('three pipelined GETs', [Buffer.concat([v, v, v])], { finals: 3 }));
  cases.push(any('pipelined GET and cached parse', [Buffer.concat([v, json(PARSE_OK, hello(10))])], { finals: 2 }));
  cases.push(any('a good GET followed by garbage', [Buffer.concat([v, Buffer.from('GARBAGE\x00\x01\r\n\r\n', 'latin1')])], { finals: 2 }));
  // Random mutations of a good webhook request: every framing decision made on odd bytes.
  const base = json('/webhooks/rest/webhook', hook('mutant')).toString('latin1');
  const headEnd = base.indexOf('\r\n\r\n') + 4;
  const inserts = ['\x00', '\x01', '\x7f', '\x80', '\xff', '\n', '\r', '\t', ' ', ':', '\r\n', '%', '"'];
  for (let i = 0; i < 70; i++) {
    let head = base.slice(0, headEnd);
    const body = base.slice(headEnd);
    const ops = 1 + Math.floor(rnd() * 3);
    const did: string[] = [];
    for (let k = 0; k < ops; k++) {
      const at = Math.floor(rnd() * (head.length - 4));
      const op = Math.floor(rnd() * 5);
      if (op === 0) {
        const ch = inserts[Math.floor(rnd() * inserts.length)] as string;
        head = head.slice(0, at) + ch + head.slice(at);
        did.push(`insert ${JSON.stringify(ch)}@${at}`);
      } else if (op === 1) {
        head = head.slice(0, at) + head.slice(at + 1);
        did.push(`delete@${at}`);
      } else if (op === 2) {
        const lines = head.split('\r\n');
        const li = 1 + Math.floor(rnd() * Math.max(1, lines.length - 3));
        lines.splice(li, 0, lines[li] as string);
        head = lines.join('\r\n');
        did.push(`duplicate line ${li}`);
      } else if (op === 3) {
        const idx = head.indexOf('\r\n', at);
        if (idx !== -1 && idx < head.length - 4) head = head.slice(0, idx) + '\n' + head.slice(idx + 2);
        did.push(`CRLF->LF after ${at}`);
      } else {
        head = head.slice(0, at) + String.fromCharCode(head.charCodeAt(at) ^ (1 << Math.floor(rnd() * 8))) + head.slice(at + 1);
        did.push(`flip bit@${at}`);
      }
    }
    cases.push(any(`mutant #${i} (${did.join(', ')})`, [head + body]));
  }
  return cases;
}

function methodTargetCases(): Case[] {
  const rnd = prng(SEED ^ 0x2222);
  const cases: Case[] = [];
  const paths = ['/model/parse', '/webhooks/rest/webhook', '/version', '/socket.io/?EIO=4&transport=polling', '/conversations/alice/tracker', '/'];
  const randomMethods = Array.from({ length: 10 }, () => Array.from({ length: 3 + Math.floor(rnd() * 10) }, () => String.fromCharCode(65 + Math.floor(rnd() * 26))).join(''));
  const odd = ['PROPFIND', 'MKCOL', 'BREW', 'TRACE', 'CONNECT', 'SEARCH', 'PURGE', 'LINK', 'UNLINK', 'QUERY', 'COPY', 'MOVE', 'LOCK', 'REPORT', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'ACL', 'BIND', 'MERGE', 'get', 'Get', 'GETS', 'POST2', 'HTTP/1.1', ...randomMethods];
  for (const m of odd) {
    for (let k = 0; k < 2; k++) {
      const p = paths[Math.floor(rnd() * paths.length)] as string;
      const body = m.startsWith('P') || k === 1 ? hello(m) : undefined;
      cases.push(refuse(`method ${m} ${p}`, [http(m, m === 'CONNECT' ? 'evil.test:443' : p, { ...(body ? { body, headers: ['Content-Type: application/json'] } : {}) })]));
    }
  }
  // Methods the gateway knows, on routes that may not want them.
  cases.push(any('HEAD /version', [http('HEAD', '/version')], { head: true }));
  cases.push(any('HEAD /model/parse', [http('HEAD', '/model/parse')], { head: true }));
  cases.push(any('HEAD /socket.io/', [http('HEAD', '/socket.io/?EIO=4&transport=polling')], { head: true }));
  cases.push(any('OPTIONS /model/parse (CORS preflight)', [http('OPTIONS', '/model/parse', { headers: ['Origin: https://evil.test', 'Access-Control-Request-Method: POST'] })]));
  cases.push(any('DELETE /webhooks/rest/webhook', [http('DELETE', '/webhooks/rest/webhook')]));
  cases.push(any('PATCH /model/parse', [json('/model/parse', hello('patch')).toString('latin1').replace(/^POST/, 'PATCH')]));
  cases.push(any('PUT /webhooks/rest/webhook', [json('/webhooks/rest/webhook', hook('put')).toString('latin1').replace(/^POST/, 'PUT')]));
  cases.push(any('GET with a body', [http('GET', '/version', { body: 'x'.repeat(100) })]));
  // Protected Rasa routes stay refused on the public listener.
  for (const [m, p] of [
    ['GET', '/domain'],
    ['GET', '/status'],
    ['POST', '/model/train'],
    ['PUT', '/model'],
    ['DELETE', '/model'],
    ['POST', '/model/test/intents'],
    ['GET', '/model/../status'],
    ['GET', '/status?token=' + TOKEN],
  ] as const) {
    cases.push(refuse(`protected ${m} ${p}`, [http(m, p, m === 'GET' || m === 'DELETE' ? {} : { body: '{}', headers: ['Content-Type: application/json'] })]));
  }
  // Absolute-form, authority-form and asterisk targets.
  for (const target of [
    'http://evil/x',
    'http://evil.test/version',
    'https://evil.test/model/parse',
    `http://127.0.0.1:${port}/version`,
    `http://${HOST}/webhooks/rest/webhook`,
    'http://user:pass@evil.test/x',
    'http:/x',
    'ftp://evil.test/x',
    '//evil.test/x',
    'evil.test:80',
    'http://[::1]/x',
    'http://evil.test',
  ]) {
    cases.push(any(`absolute target GET ${target}`, [http('GET', target)]));
  }
  cases.push(any('absolute target POST http://evil/model/parse', [json('http://evil/model/parse', hello('abs'))]));
  cases.push(any('absolute target webhook', [json('http://evil/webhooks/rest/webhook', hook('abs'))]));
  for (const m of ['OPTIONS', 'GET', 'POST', 'DELETE', 'HEAD']) {
    cases.push(any(`${m} *`, [http(m, '*', m === 'POST' ? { body: '{}', headers: ['Content-Type: application/json'] } : {})], { head: m === 'HEAD' }));
  }
  cases.push(any('OPTIONS * HTTP/1.0', [http('OPTIONS', '*', { version: 'HTTP/1.0' })], { watchClose: true }));
  // Bad percent-encoding and raw non-UTF-8 bytes in the path.
  for (const p of [
    '/%zz',
    '/conversations/%E0%A4%A/tracker',
    '/%',
    '/%%',
    '/%2',
    '/model/parse%',
    '/model%2Fparse',
    '/webhooks/%zz/webhook',
    '/webhooks/rest/webhook%zz',
    '/conversations/%C0%AF/tracker',
    '/conversations/%ED%A0%80/tracker',
    '/conversations/%FF%FE/tracker',
    '/conversations/%00/tracker',
    '/conversations/%zz/messages',
    '/socket.io/%zz',
    '/..%2F..%2Fetc%2Fpasswd',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/../../etc/passwd',
    '/./model/parse',
    '/conversations/a%2Fb/tracker',
    '/version?%zz',
    '/version?a=%E0%A4%A',
    '/version#fragment',
    '/\xff',
    '/conversations/\xc3\x28/tracker',
    '/webhooks/\xe2\x82/webhook',
    '/model/parse\x80',
    '/\xed\xa0\x80',
    '/\\..\\..\\windows',
    '/' + 'a'.repeat(7000),
  ]) {
    const post = /parse|webhook|messages/.test(p);
    cases.push(any(`path ${JSON.stringify(p.length > 60 ? `${p.slice(0, 40)}…(${p.length})` : p)}`, [post ? json(p, /webhook/.test(p) ? hook('pct') : hello('pct')) : http('GET', p)]));
  }
  cases.push(parserRefuse('path of 10000 bytes', [http('GET', '/' + 'a'.repeat(10_000))]));
  cases.push(parserRefuse('path of 100000 bytes', [http('GET', '/' + 'a'.repeat(100_000))]));
  // Random paths over a hostile alphabet.
  const alphabet = ['%', '%2', '%zz', '%C3', '%28', '/', '//', '..', ';', '\\', '?', '&', '=', '#', '\x80', '\xff', '\xc3', '\x28', 'a', 'Z', '~', '@', ':', '[', ']', '!', '$', "'", '(', ')', '*', '+', ','];
  for (let i = 0; i < 30; i++) {
    const prefix = ['/', '/model/parse', '/webhooks/rest/webhook', '/conversations/', '/socket.io/'][Math.floor(rnd() * 5)] as string;
    let p = prefix;
    const n = 1 + Math.floor(rnd() * 12);
    for (let k = 0; k < n; k++) p += alphabet[Math.floor(rnd() * alphabet.length)];
    const post = !prefix.startsWith('/socket.io') && rnd() < 0.5;
    cases.push(any(`random path #${i} ${JSON.stringify(p)}`, [post ? json(p, hook(`rp${i}`)) : http('GET', p)]));
  }
  return cases;
}

function headerCases(): Case[] {
  const rnd = prng(SEED ^ 0x3333);
  const cases: Case[] = [];
  const targets: [string, (headers: string[]) => Buffer][] = [
    ['GET /version', (h) => http('GET', '/version', { headers: h })],
    ['cached parse', (h) => json(PARSE_OK, hello('hdr'), h)],
    ['uncached parse', (h) => json('/model/parse', hello('hdr'), ['Cache-Control: no-cache', ...h])],
    ['webhook', (h) => json('/webhooks/rest/webhook', hook('hdr'), h)],
  ];
  const on = (name: string, headers: string[], more: Partial<Case> = {}, only?: number[]) =>
    targets.forEach(([tname, build], i) => {
      if (!only || only.includes(i)) cases.push({ expect: 'any', ...more, name: `${name} on ${tname}`, parts: [build(headers)] });
    });
  // Huge and many.
  on('a 7000-byte header', [`X-Big: ${'y'.repeat(7000)}`]);
  for (const size of [9000, 16_384, 65_536, 1_048_576]) on(`a ${size}-byte header`, [`X-Big: ${'y'.repeat(size)}`], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('a 5000-byte header name', [`X-${'n'.repeat(5000)}: 1`], {}, [0, 3]);
  for (const count of [40, 49, 60, 100, 500]) on(`${count} headers`, Array.from({ length: count }, (_, i) => `X-H${i}: v${i}`), {}, [0, 1, 3]);
  on('2000 headers (over the size limit)', Array.from({ length: 2000 }, (_, i) => `X-H${i}: v${i}`), { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('50 cookies', Array.from({ length: 50 }, (_, i) => `Cookie: c${i}=${'v'.repeat(20)}`), {}, [0, 3]);
  // Duplicated.
  on('Content-Type twice', ['Content-Type: text/plain'], {}, [1, 3]);
  on('Authorization twice', [`Authorization: Bearer ${jwt('{"alg":"HS256"}', '{}')}`, 'Authorization: Basic eDp5'], {}, [1, 2]);
  on('X-Forwarded-For x10', Array.from({ length: 10 }, (_, i) => `X-Forwarded-For: 10.0.0.${i}, evil`));
  on('X-Forwarded-Host and Proto forged', ['X-Forwarded-Host: evil.test', 'X-Forwarded-Proto: gopher']);
  // x-request-id, huge and odd.
  for (const [name, value] of [
    ['7000-byte', 'r'.repeat(7000)],
    ['300-byte', 'r'.repeat(300)],
    ['empty', ''],
    ['spaces', '   '],
    ['tab', '\t'],
    ['path traversal', '../../etc/passwd'],
    ['html', '<script>alert(1)</script>'],
    ['raw latin1 bytes', '\x80\xff\xfe'],
    ['raw UTF-8', Buffer.from('日本語-🦜', 'utf8').toString('latin1')],
    ['percent NUL', '%00'],
    ['comma list', 'a, b, c'],
    ['JSON', '{"id":1}'],
    ['null', 'null'],
    ['CRLF-looking text', '\\r\\nX-Injected: 1'],
  ] as const) {
    on(`x-request-id ${name}`, [`X-Request-Id: ${value}`], {}, [0, 1, 3]);
  }
  on('x-request-id twice', ['X-Request-Id: one', 'X-Request-Id: two'], {}, [0, 3]);
  on('x-request-id 20000 bytes', [`X-Request-Id: ${'r'.repeat(20_000)}`], { expect: 'refuse', parserLevel: true }, [0]);
  on('x-request-id with DEL', ['X-Request-Id: a\x7fb'], {}, [0]);
  on('x-request-id with NUL', ['X-Request-Id: a\x00b'], { expect: 'refuse', parserLevel: true }, [0]);
  // Hop-by-hop request headers: must not reach a pod, and must not turn a healthy pod into a 502.
  for (const [name, headers] of [
    ['Connection naming a header', ['Connection: keep-alive, X-Secret', 'X-Secret: 1']],
    ['Keep-Alive', ['Keep-Alive: timeout=5, max=100']],
    ['Proxy-Connection', ['Proxy-Connection: keep-alive']],
    ['TE: trailers', ['TE: trailers']],
    ['TE: gzip', ['TE: gzip']],
    ['Trailer', ['Trailer: X-Foo']],
    ['h2c upgrade', ['Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']],
    ['Upgrade without Connection', ['Upgrade: websocket']],
    ['Connection: garbage tokens', ['Connection: foo bar']],
    ['Connection: high byte', ['Connection: \x80']],
    ['Proxy-Authorization', ['Proxy-Authorization: Basic eDp5']],
  ] as [string, string[]][]) {
    on(`hop-by-hop ${name}`, headers);
  }
  // Bad bytes and bad syntax in header lines.
  on('header value with high bytes', ['X-Foo: \x80\xff\xfe']);
  on('header value with invalid UTF-8 user agent', ['User-Agent: \xc3\x28\xa0\xa1'], {}, [0, 3]);
  on('header value with DEL', ['X-Foo: a\x7fb'], {}, [0, 3]);
  on('header value with NUL', ['X-Foo: a\x00b'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('header value with a control byte', ['X-Foo: a\x01b'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('obs-fold continuation', ['X-Foo: a', ' folded'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('space before the colon', ['X-Foo : 1'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('space in a header name', ['X Foo: 1'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('empty header name', [': 1'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('header without a colon', ['X-Foo'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('high byte in a header name', ['X-\xff: 1'], { expect: 'refuse', parserLevel: true }, [0, 3]);
  on('Content-Type odd charset', ['Content-Type: application/json; charset=latin1'], {}, [1, 3]);
  for (const ct of ['text/plain', 'multipart/form-data', 'application/x-www-form-urlencoded', '', 'application/json\x80', 'application/json, text/html', '*/*']) {
    cases.push(any(`webhook with Content-Type ${JSON.stringify(ct)}`, [http('POST', '/webhooks/rest/webhook', { headers: [`Content-Type: ${ct}`], body: hook('ct') })]));
    cases.push(any(`parse with Content-Type ${JSON.stringify(ct)}`, [http('POST', PARSE_OK, { headers: [`Content-Type: ${ct}`], body: hello('ct') })]));
  }
  // Random header soup.
  const names = ['X-A', 'Accept', 'Accept-Encoding', 'Cache-Control', 'Origin', 'Referer', 'Cookie', 'Range', 'If-None-Match', 'Via', 'Forwarded', 'X-Real-IP', 'Max-Forwards'];
  for (let i = 0; i < 16; i++) {
    const hs = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => `${names[Math.floor(rnd() * names.length)]}: ${Array.from({ length: Math.floor(rnd() * 40) }, () => String.fromCharCode(0x20 + Math.floor(rnd() * 0xdf))).join('').replace(/\x7f/g, '')}`);
    const [tname, build] = targets[i % targets.length] as [string, (h: string[]) => Buffer];
    cases.push(any(`header soup #${i} on ${tname}`, [build(hs)]));
  }
  return cases;
}

function deep(depth: number, open: string, close: string, inner = '0'): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

function bodyCases(): Case[] {
  const cases: Case[] = [];
  // Deeply nested JSON within the 64 KiB body limit.
  for (const depth of [100, 1000, 30_000]) {
    const arr = deep(depth, '[', ']');
    cases.push(any(`webhook with ${depth}-deep arrays`, [json('/webhooks/rest/webhook', `{"sender":"deep-${depth}","message":"hi","x":${arr}}`)]));
    cases.push(any(`cached parse with ${depth}-deep arrays`, [json(PARSE_OK, `{"text":"deep","x":${arr}}`)]));
    cases.push(any(`uncached parse with ${depth}-deep arrays`, [json('/model/parse', `{"text":"deep","x":${arr}}`, ['Cache-Control: no-cache'])]));
  }
  for (const depth of [1000, 10_000]) {
    const obj = deep(depth, '{"a":', '}');
    cases.push(any(`webhook with ${depth}-deep objects`, [json('/webhooks/rest/webhook', `{"sender":"obj-${depth}","x":${obj}}`)]));
    cases.push(any(`cached parse with ${depth}-deep objects`, [json(PARSE_OK, `{"text":"deep","x":${obj}}`)]));
    cases.push(any(`webhook sender ${depth}-deep object`, [json('/webhooks/rest/webhook', `{"sender":${obj},"message":"hi"}`)]));
  }
  cases.push(any('webhook body is 30000-deep arrays', [json('/webhooks/rest/webhook', deep(30_000, '[', ']'))]));
  cases.push(any('cached parse body is 30000-deep arrays', [json(PARSE_OK, deep(30_000, '[', ']'))]));
  cases.push(any('cached parse with text 10000-deep', [json(PARSE_OK, `{"text":${deep(10_000, '[', ']', '"x"')}}`)]));
  cases.push(any('cached parse with message_id 10000-deep', [json(PARSE_OK, `{"text":"x","message_id":${deep(10_000, '[', ']')}}`)]));
  // Webhook sender of every JSON type.
  const senders = [
    '"alice"', '""', '0', '-0', '1.5e308', '1e-400', '123456789012345678901234567890', '3.14', 'true', 'false', 'null',
    '[]', '["a"]', '{}', '{"id":"x"}', '"\\u0000"', '"\\ud800"', '"日本語"', `"${'s'.repeat(10_000)}"`, '"../../etc/passwd"', '"__proto__"', '"constructor"',
  ];
  for (const s of senders) cases.push(any(`webhook sender ${s.length > 40 ? `${s.slice(0, 20)}…` : s}`, [json('/webhooks/rest/webhook', `{"sender":${s},"message":"hi"}`)]));
  for (const b of ['{"message":"no sender"}', '[]', '"str"', '42', 'null', 'true', '', '{', '{"sender":"a","sender":"b"}', '{"__proto__":{"polluted":1},"sender":"proto"}', '{"constructor":{"prototype":{"x":1}},"sender":"ctor"}', '\ufeff{"sender":"bom"}', '{"sender":"a"}garbage']) {
    cases.push(any(`webhook body ${JSON.stringify(b)}`, [json('/webhooks/rest/webhook', b)]));
  }
  // Parse text of every JSON type, cached and not.
  for (const t of ['1', 'null', '["a"]', '{}', 'true', '""', `"${'t'.repeat(20_000)}"`, '"\\ud800"']) {
    cases.push(any(`cached parse text ${t.length > 20 ? 'long' : t}`, [json(PARSE_OK, `{"text":${t}}`)]));
    cases.push(any(`uncached parse text ${t.length > 20 ? 'long' : t}`, [json('/model/parse', `{"text":${t}}`, ['Cache-Control: no-cache'])]));
  }
  for (const b of ['', '[]', 'null', '{', '{"text":"a","message_id":{}}', '{"text":"a","__proto__":{"x":1}}']) cases.push(any(`cached parse body ${JSON.stringify(b)}`, [json(PARSE_OK, b)]));
  // Invalid UTF-8 bodies.
  for (const [name, bytes] of [
    ['lone continuation bytes', Buffer.from('{"sender":"\x80\x80","message":"\xbf"}', 'latin1')],
    ['truncated sequence', Buffer.from('{"sender":"\xe2\x82","message":"hi"}', 'latin1')],
    ['overlong slash', Buffer.from('{"sender":"\xc0\xaf","message":"hi"}', 'latin1')],
    ['UTF-16 surrogate bytes', Buffer.from('{"sender":"\xed\xa0\x80","message":"hi"}', 'latin1')],
    ['0xff 0xfe', Buffer.from('\xff\xfe{"sender":"x"}', 'latin1')],
    ['NUL bytes', Buffer.from('{"sender":"a\x00b","message":"\x00"}', 'latin1')],
    ['UTF-16LE', Buffer.from('{"sender":"u16"}', 'utf16le')],
  ] as [string, Buffer][]) {
    cases.push(any(`webhook body with ${name}`, [json('/webhooks/rest/webhook', bytes)]));
    cases.push(any(`cached parse body with ${name}`, [json(PARSE_OK, Buffer.concat([Buffer.from('{"text":"'), bytes, Buffer.from('"}')]))]));
    cases.push(any(`uncached parse body with ${name}`, [json('/model/parse', Buffer.concat([Buffer.from('{"text":"'), bytes, Buffer.from('"}')]), ['Cache-Control: no-cache'])]));
  }
  // Generated JSON (fast-check), as a whole body, as a sender and as a text.
  const values = fc.sample(fc.jsonValue({ maxDepth: 4 }), { seed: SEED, numRuns: 30 });
  values.forEach((value, i) => {
    const s = JSON.stringify(value) ?? 'null';
    cases.push(any(`generated webhook body #${i}`, [json('/webhooks/rest/webhook', s)]));
    cases.push(any(`generated sender #${i}`, [json('/webhooks/rest/webhook', `{"sender":${s},"message":"gen"}`)]));
    cases.push(any(`generated cached parse #${i}`, [json(PARSE_OK, `{"text":"gen","extra":${s}}`)]));
  });
  // Over the limit: refused before any pod sees it.
  cases.push(refuse('webhook body over the limit', [json('/webhooks/rest/webhook', `{"sender":"big","message":"${'x'.repeat(70_000)}"}`)]));
  cases.push(refuse('parse body over the limit', [json(PARSE_OK, `{"text":"${'x'.repeat(70_000)}"}`)]));
  cases.push(refuse('declared Content-Length of 1 GB, small body', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n${hook('liar')}`]));
  const bigChunks = Array.from({ length: 5 }, () => `3e80\r\n${'x'.repeat(0x3e80)}\r\n`).join('');
  cases.push(refuse('chunked body over the limit', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${bigChunks}0\r\n\r\n`]));
  return cases;
}

function authCases(): Case[] {
  const cases: Case[] = [];
  const valid = jwt('{"alg":"HS256","typ":"JWT"}', JSON.stringify({ user: { username: 'u', role: 'admin' }, exp: Math.floor(Date.now() / 1000) + 3600 }));
  const garbageSig = (h: string, p = '{}') => `${b64url(h)}.${b64url(p)}.x`;
  const bearers: [string, string][] = [
    ['header decodes to null', 'Bearer bnVsbA.e30.x'],
    ['two segments', 'Bearer a.b'],
    ['three empty segments', 'Bearer ...'],
    ['two dots', 'Bearer ..'],
    ['one dot', 'Bearer .'],
    ['empty bearer', 'Bearer '],
    ['scheme only', 'Bearer'],
    ['lowercase scheme', `bearer ${valid}`],
    ['uppercase scheme', `BEARER ${valid}`],
    ['double space', `Bearer  ${valid}`],
    ['trailing garbage', `Bearer ${valid} extra`],
    ['Basic', 'Basic dXNlcjpwYXNz'],
    ['Token scheme', 'Token abc'],
    ['header is 1', garbageSig('1')],
    ['header is a string', garbageSig('"HS256"')],
    ['header is an array', garbageSig('[]')],
    ['header is true', garbageSig('true')],
    ['header is {}', garbageSig('{}')],
    ['header alg null', garbageSig('{"alg":null}')],
    ['payload null, signed', jwt('{"alg":"HS256"}', 'null')],
    ['payload 1, signed', jwt('{"alg":"HS256"}', '1')],
    ['payload a string, signed', jwt('{"alg":"HS256"}', '"x"')],
    ['payload an array, signed', jwt('{"alg":"HS256"}', '[]')],
    ['payload true, signed', jwt('{"alg":"HS256"}', 'true')],
    ['header null, signed', jwt('null', '{}')],
    ['payload not JSON, signed', jwt('{"alg":"HS256"}', '{not json')],
    ['alg none, no signature', jwt('{"alg":"none"}', '{}', undefined)],
    ['alg none, garbage signature', `${b64url('{"alg":"none"}')}.${b64url('{}')}.x`],
    ['alg NONE', jwt('{"alg":"NONE"}', '{}', undefined)],
    ['wrong alg HS512, signed with HS512', jwt('{"alg":"HS512"}', '{}', SECRET, 'sha512')],
    ['alg RS256 with an HMAC signature', jwt('{"alg":"RS256"}', '{}')],
    ['alg hs256 lowercase', jwt('{"alg":"hs256"}', '{}')],
    ['wrong secret', jwt('{"alg":"HS256"}', '{}', 'not-the-secret')],
    ['expired', jwt('{"alg":"HS256"}', '{"exp":1}')],
    ['exp a string', jwt('{"alg":"HS256"}', '{"exp":"never"}')],
    ['exp 1e308', jwt('{"alg":"HS256"}', '{"exp":1e308}')],
    ['exp null', jwt('{"alg":"HS256"}', '{"exp":null}')],
    ['nbf in the future', jwt('{"alg":"HS256"}', '{"nbf":99999999999}')],
    ['nbf an object', jwt('{"alg":"HS256"}', '{"nbf":{}}')],
    ['crit header', jwt('{"alg":"HS256","crit":["x"]}', '{}')],
    ['b64 false', jwt('{"alg":"HS256","b64":false,"crit":["b64"]}', '{}')],
    ['kid traversal', jwt('{"alg":"HS256","kid":"../../etc/passwd"}', '{}')],
    ['jku/x5u', jwt('{"alg":"HS256","jku":"http://evil.test/jwks"}', '{}')],
    ['non-base64url characters', 'Bearer !!!.@@@.###'],
    ['standard base64 with padding', `Bearer ${Buffer.from('{"alg":"HS256"}').toString('base64')}.${Buffer.from('{}').toString('base64')}.abc=`],
    ['header with invalid UTF-8', `Bearer ${b64url(Buffer.from([0xff, 0xfe, 0x7b]))}.${b64url('{}')}.x`],
    ['four segments', `Bearer ${valid}.x`],
    ['huge token', `Bearer ${'a'.repeat(3000)}.${'b'.repeat(2000)}.c`],
    ['huge payload, signed', jwt('{"alg":"HS256"}', JSON.stringify({ pad: 'p'.repeat(4000) }))],
    ['deep payload, signed', jwt('{"alg":"HS256"}', deep(500, '{"a":', '}'))],
    ['raw high bytes', 'Bearer \x80\xff.\xfe.\xfd'],
    ['valid (baseline)', `Bearer ${valid}`],
  ];
  const withWrongToken = new Set(['valid (baseline)', 'two segments', 'alg none, no signature', 'expired', 'wrong secret', 'wrong alg HS512, signed with HS512']);
  const withBearer = (v: string) => (v.startsWith('Bearer') || v.startsWith('bearer') || v.startsWith('BEARER') || v.startsWith('Basic') || v.startsWith('Token') ? v : `Bearer ${v}`);
  // Tokens Rasa (PyJWT) refuses: the gateway must not answer them from its cache (rasa-auth.ts).
  const rasaRefuses = new Set([
    'alg none, no signature', 'alg none, garbage signature', 'alg NONE', 'wrong alg HS512, signed with HS512', 'alg RS256 with an HMAC signature', 'alg hs256 lowercase',
    'wrong secret', 'expired', 'nbf in the future', 'payload 1, signed', 'payload a string, signed', 'payload an array, signed', 'payload true, signed', 'exp a string',
  ]);
  const notFromCache = (ex: Exchange) => (ex.responses.some((r) => header(r, 'x-gateway-cache').length > 0) ? ['a JWT Rasa refuses was answered from the parse cache (x-gateway-cache)'] : []);
  for (const [name, value] of bearers) {
    const h = `Authorization: ${withBearer(value)}`;
    cases.push(any(`JWT ${name} on POST /model/parse`, [json('/model/parse', hello(`jwt ${name}`), [h])], rasaRefuses.has(name) ? { check: notFromCache } : {}));
    if (withWrongToken.has(name)) cases.push(any(`JWT ${name} with a wrong ?token=`, [json('/model/parse?token=wrong', hello(`jwt ${name}`), [h])]));
    cases.push(any(`JWT ${name} on the webhook`, [json('/webhooks/rest/webhook', hook(`jwt-${name}`), [h])]));
  }
  cases.push(any('JWT null header on GET /model/parse (no body)', [http('GET', '/model/parse', { headers: ['Authorization: Bearer bnVsbA.e30.x'] })]));
  for (const q of ['%zz', '%E0%A4%A', '%', '', `${TOKEN}%00`, `${TOKEN}&token=x`, `x&token=${TOKEN}`, 'a'.repeat(5000), '\xff', `${TOKEN.slice(0, 3)}+${TOKEN.slice(3)}`, `${encodeURIComponent(TOKEN)}#frag`]) {
    cases.push(any(`?token=${JSON.stringify(q.length > 40 ? `${q.slice(0, 10)}…(${q.length})` : q)}`, [json(`/model/parse?token=${q}`, hello(`tok ${q.slice(0, 8)}`))]));
  }
  for (const q of ['token', 'token[]=' + TOKEN, '&&&', '=', '==&=', 'token=%zz&token=' + TOKEN, `%74oken=${TOKEN}`]) {
    cases.push(any(`query ${JSON.stringify(q)}`, [json(`/model/parse?${q}`, hello(`q ${q}`))]));
  }
  return cases;
}

async function openSession(): Promise<{ sid: string; token: string; podSid: string; pod: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`);
  const text = await res.text();
  const sid = (JSON.parse(text.slice(1)) as { sid: string }).sid;
  return { sid, token: sid.slice(0, 8), podSid: sid.slice(9), pod: res.headers.get('x-rasa-pod') };
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function socketCases(real: { sid: string; token: string; podSid: string }): Case[] {
  const cases: Case[] = [];
  const poll = (sid: string) => `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  /**
   * `podDecides`: the sid names a real pod, so only that pod can tell whether the session exists. Its
   * polls get engine.io's own 400; a websocket upgrade is accepted by the gateway's websocket proxy
   * (101) and closed once the pod refuses it (@fastify/http-proxy upgrades the client first).
   */
  const unknown = (name: string, sid: string, mustRefuse: boolean, podDecides = false) => {
    const more: Partial<Case> = { unknownSid: true };
    const mk = mustRefuse ? refuse : any;
    cases.push(mk(`GET poll with sid ${name}`, [http('GET', poll(sid))], more));
    cases.push(mk(`POST poll with sid ${name}`, [http('POST', poll(sid), { headers: ['Content-Type: text/plain;charset=UTF-8'], body: '40' })], more));
    const upgrade = [http('GET', `/socket.io/?EIO=4&transport=websocket&sid=${sid}`, { headers: ['Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'] })];
    cases.push(mk(`websocket upgrade with sid ${name}`, upgrade, podDecides ? { allowUpgrade: true } : more));
  };
  unknown('deadbeef.xyz', 'deadbeef.xyz', true);
  unknown('with no token', 'xyz', true);
  unknown('with no token, long', 'abcdefghijklmnop', true);
  unknown('deadbeef. (empty pod sid)', 'deadbeef.', true);
  unknown('uppercase token', `${real.token.toUpperCase().replace(/^[0-9]/, 'A')}.${real.podSid}`, true);
  unknown('token without the dot', `${real.token}x${real.podSid}`, true);
  unknown('5000 bytes', 's'.repeat(5000), true);
  unknown('bad percent-encoding %zz', '%zz', false);
  unknown('bad percent-encoding %E0%A4%A', '%E0%A4%A', false);
  unknown('lone %', '%', false);
  unknown('raw high bytes', '\xff\xfe', false);
  unknown('real token, forged pod sid', `${real.token}.forged-sid`, false, true);
  unknown('real token, NUL-encoded pod sid', `${real.token}.%00`, false, true);
  cases.push(any('empty sid', [http('GET', poll(''))]));
  cases.push(any('sid twice (forged first)', [http('POST', `${poll('deadbeef.xyz')}&sid=${real.sid}`, { headers: ['Content-Type: text/plain;charset=UTF-8'], body: '40' })]));
  cases.push(any('sid twice (real first)', [http('POST', `${poll(real.sid)}&sid=deadbeef.xyz`, { headers: ['Content-Type: text/plain;charset=UTF-8'], body: '40' })]));
  cases.push(any('real sid, percent-encoded', [http('POST', poll(encodeURIComponent(real.sid).replace(/\./g, '%2E')), { headers: ['Content-Type: text/plain;charset=UTF-8'], body: '40' })]));
  for (const q of ['EIO=3&transport=polling', 'EIO=99&transport=polling', 'EIO=4&transport=carrier-pigeon', 'transport=polling', 'EIO=4', 'EIO=4&transport=polling&b64=1', 'EIO=4&transport=polling&j=0']) {
    cases.push(any(`handshake ${q}`, [http('GET', `/socket.io/?${q}`)]));
  }
  cases.push(any('socket.io path without trailing slash', [http('GET', '/socket.io?EIO=4&transport=polling')]));
  cases.push(any('POST poll, invalid UTF-8 body', [http('POST', poll(real.sid), { headers: ['Content-Type: text/plain;charset=UTF-8'], body: Buffer.from('42["user_uttered",{"message":"\xff\xfe"}]', 'latin1') })]));
  cases.push(any('POST poll, garbage packet', [http('POST', poll(real.sid), { headers: ['Content-Type: text/plain;charset=UTF-8'], body: '9zzz\x1e\x1e' })]));
  cases.push(refuse('POST poll, body over the limit', [http('POST', poll(real.sid), { headers: ['Content-Type: text/plain;charset=UTF-8'], body: `42["user_uttered",{"message":"${'x'.repeat(70_000)}"}]` })]));
  // Websocket handshakes.
  const ws = (name: string, headers: string[], more: Partial<Case> = {}, target = '/socket.io/?EIO=4&transport=websocket') => cases.push({ expect: 'any', name: `websocket ${name}`, parts: [http('GET', target, { headers })], ...more });
  const up = ['Upgrade: websocket', 'Connection: Upgrade'];
  ws('good handshake', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { allowUpgrade: true, expectStatus: 101 });
  ws('good handshake, mixed-case Upgrade', ['Upgrade: WebSocket', 'Connection: keep-alive, Upgrade', `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { allowUpgrade: true, expectStatus: 101 });
  ws('upgrade of the real polling session', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { allowUpgrade: true }, `/socket.io/?EIO=4&transport=websocket&sid=${real.sid}`);
  ws('missing Sec-WebSocket-Key', [...up, 'Sec-WebSocket-Version: 13'], { expect: 'refuse', parserLevel: true });
  ws('Sec-WebSocket-Key not base64', [...up, 'Sec-WebSocket-Key: !!!not-base64!!!', 'Sec-WebSocket-Version: 13'], { expect: 'refuse', parserLevel: true });
  ws('Sec-WebSocket-Key of the wrong length', [...up, `Sec-WebSocket-Key: ${Buffer.alloc(20, 1).toString('base64')}`, 'Sec-WebSocket-Version: 13'], { expect: 'refuse', parserLevel: true });
  ws('empty Sec-WebSocket-Key', [...up, 'Sec-WebSocket-Key: ', 'Sec-WebSocket-Version: 13'], { expect: 'refuse', parserLevel: true });
  ws('missing Sec-WebSocket-Version', [...up, `Sec-WebSocket-Key: ${WS_KEY}`], { expect: 'refuse', parserLevel: true });
  ws('Sec-WebSocket-Version 8 (hybi-08)', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 8'], { allowUpgrade: true });
  ws('Sec-WebSocket-Version 7', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 7'], { expect: 'refuse', parserLevel: true });
  ws('Sec-WebSocket-Version x', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: x'], { expect: 'refuse', parserLevel: true });
  ws('Sec-WebSocket-Version twice', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8']);
  ws('Connection: Upgrade without Upgrade', ['Connection: Upgrade', `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13']);
  ws('Upgrade without Connection: Upgrade', ['Upgrade: websocket', `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13']);
  ws('Upgrade: h2c on socket.io', ['Upgrade: h2c', 'Connection: Upgrade, HTTP2-Settings', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']);
  ws('Sec-WebSocket-Extensions garbage', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99; x'], { allowUpgrade: true });
  ws('Sec-WebSocket-Protocol odd', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: a b, , \x80'], { allowUpgrade: true });
  ws('on the webhook path', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { allowUpgrade: true }, '/webhooks/rest/webhook');
  ws('on /version', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { allowUpgrade: true }, '/version');
  ws('on a protected route', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { expect: 'refuse' }, '/domain');
  ws('with bad percent-encoding in the path', [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], { allowUpgrade: true }, '/socket.io/%zz?EIO=4&transport=websocket');
  cases.push(any('websocket handshake with POST', [http('POST', '/socket.io/?EIO=4&transport=websocket', { headers: [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'], body: 'x' })], { allowUpgrade: true }));
  cases.push(any('websocket handshake over HTTP/1.0', [http('GET', '/socket.io/?EIO=4&transport=websocket', { version: 'HTTP/1.0', headers: [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'] })], { allowUpgrade: true }));
  cases.push(any('websocket handshake then garbage frames', [http('GET', '/socket.io/?EIO=4&transport=websocket', { headers: [...up, `Sec-WebSocket-Key: ${WS_KEY}`, 'Sec-WebSocket-Version: 13'] }), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01])], { allowUpgrade: true }));
  return cases;
}

function connectionCases(): Case[] {
  const cases: Case[] = [];
  const closing = (name: string, build: (h: string[]) => Buffer, variants = ['Connection: close']) => {
    for (const hdr of variants) cases.push(any(`${hdr} on ${name}`, [build([hdr])], { watchClose: true }));
  };
  const allVariants = ['Connection: close', 'Connection: Close', 'Connection: close, TE', 'connection:close'];
  closing('GET /version (proxied)', (h) => http('GET', '/version', { headers: h }), allVariants);
  closing('cached parse', (h) => json(PARSE_OK, hello('close'), h), allVariants);
  closing('uncached parse', (h) => json('/model/parse', hello('close'), ['Cache-Control: no-cache', ...h]));
  closing('webhook', (h) => json('/webhooks/rest/webhook', hook('closer'), h), allVariants);
  closing('a protected route (403)', (h) => http('GET', '/domain', { headers: h }));
  closing('bad percent-encoding', (h) => http('GET', '/%zz', { headers: h }));
  closing('an unknown method', (h) => http('PROPFIND', '/version', { headers: h }));
  closing('a body over the limit', (h) => json('/webhooks/rest/webhook', `{"sender":"big","message":"${'x'.repeat(70_000)}"}`, h));
  closing('a socket.io handshake', (h) => http('GET', '/socket.io/?EIO=4&transport=polling', { headers: h }));
  closing('a forged sid', (h) => http('GET', '/socket.io/?EIO=4&transport=polling&sid=deadbeef.xyz', { headers: h }));
  closing('HEAD /version', (h) => http('HEAD', '/version', { headers: h }));
  cases.filter((c) => c.name.startsWith('Connection: close on HEAD')).forEach((c) => (c.head = true));
  // HTTP/1.0: close after the answer unless the client asked to keep it.
  const one = (name: string, b: Buffer, more: Partial<Case> = {}) => cases.push(any(`HTTP/1.0 ${name}`, [b], { watchClose: true, ...more }));
  one('GET /version', http('GET', '/version', { version: 'HTTP/1.0' }));
  one('cached parse', json(PARSE_OK, hello('ten'), [], { version: 'HTTP/1.0' }));
  one('uncached parse', json('/model/parse', hello('ten'), ['Cache-Control: no-cache'], { version: 'HTTP/1.0' }));
  one('webhook', json('/webhooks/rest/webhook', hook('ten'), [], { version: 'HTTP/1.0' }));
  one('protected route', http('GET', '/domain', { version: 'HTTP/1.0' }));
  one('socket.io handshake', http('GET', '/socket.io/?EIO=4&transport=polling', { version: 'HTTP/1.0' }));
  one('forged sid', http('GET', '/socket.io/?EIO=4&transport=polling&sid=deadbeef.xyz', { version: 'HTTP/1.0' }), { unknownSid: true });
  one('bad percent-encoding', http('GET', '/%zz', { version: 'HTTP/1.0' }));
  one('Connection: close', http('GET', '/version', { version: 'HTTP/1.0', headers: ['Connection: close'] }));
  cases.push(any('HTTP/1.0 with Connection: keep-alive', [http('GET', '/version', { version: 'HTTP/1.0', headers: ['Connection: keep-alive'] })]));
  cases.push(any('HTTP/1.0 keep-alive, two requests', [Buffer.concat([http('GET', '/version', { version: 'HTTP/1.0', headers: ['Connection: keep-alive'] }), http('GET', '/version', { version: 'HTTP/1.0', headers: ['Connection: keep-alive'] })])], { finals: 2 }));
  // Abandoned uploads: we hang up mid-body. Nothing may reach a pod, nothing may leak.
  const partial = (target: string, ct = 'application/json') => `POST ${target} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: ${ct}\r\nContent-Length: 1000\r\n\r\n{"text":"`;
  for (const [name, target, ct] of [
    ['cached parse', PARSE_OK, 'application/json'],
    ['uncached parse', '/model/parse', 'application/json'],
    ['webhook', '/webhooks/rest/webhook', 'application/json'],
    ['socket.io POST', '/socket.io/?EIO=4&transport=polling&sid=deadbeef.xyz', 'text/plain;charset=UTF-8'],
    ['text/plain parse', PARSE_OK, 'text/plain'],
  ] as const) {
    cases.push(refuse(`abandoned upload (1000 declared, 10 sent) on ${name}`, [partial(target, ct)], { abandon: true }));
    cases.push(refuse(`abandoned upload after a pause on ${name}`, [partial(target, ct), { pauseMs: 300 }], { abandon: true }));
    cases.push(parserRefuse(`stalled upload (1000 declared, 10 sent) on ${name}`, [partial(target, ct)], { waitMs: 5000 }));
  }
  cases.push(refuse('abandoned chunked upload', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"sender":"aban`], { abandon: true }));
  cases.push(parserRefuse('stalled chunked upload', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"sender":"stal`], { waitMs: 5000 }));
  cases.push(refuse('abandoned head', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Ty`], { abandon: true }));
  cases.push(parserRefuse('stalled head', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Ty`], { waitMs: 5000 }));
  cases.push(refuse('abandoned after Expect: 100-continue', [`POST /model/parse HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: 15\r\nExpect: 100-continue\r\n\r\n`, { awaitContinue: true }], { abandon: true }));
  return cases;
}

// ---------------------------------------------------------------------------------------------
// The battery

test('framing: bad request lines, bare LF, Host, CL+TE, bad chunk sizes, duplicated Content-Length, mutants', async (t) => {
  await runGroup(t, 'framing', framingCases());
});

test('methods and targets: unknown and odd methods, absolute-form and * targets, bad percent-encoding, non-UTF-8 paths', async (t) => {
  await runGroup(t, 'methods-targets', methodTargetCases());
});

test('headers: huge, many, duplicated, hop-by-hop, invalid bytes, odd x-request-id', async (t) => {
  await runGroup(t, 'headers', headerCases());
});

test('bodies: deep JSON within the limit, invalid UTF-8, webhook sender of every JSON type, over the limit', async (t) => {
  await runGroup(t, 'bodies', bodyCases());
});

test('socket.io: forged sids, bad websocket handshakes, and a real widget session still works', async (t) => {
  await ensureAlive();
  const real = await openSession();
  await runGroup(t, 'socketio', socketCases(real), async (add) => {
    const chat = await widgetChat('hostile-widget');
    if (chat) add({ kind: `a socket.io-client session through the gateway failed: ${chat}`, caseName: 'socket.io-client', request: undefined, response: chat });
  });
});

test('connection semantics: Connection: close, HTTP/1.0, Expect: 100-continue, abandoned and stalled uploads', async (t) => {
  await runGroup(t, 'connection', connectionCases(), async (add) => {
    // Expect: 100-continue, one at a time so each pod's last headers are this request's.
    const expectCase = (name: string, target: string, body: string, extra: string[], wantPod: boolean) => {
      const head = `POST ${target} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n${extra.map((h) => `${h}\r\n`).join('')}\r\n`;
      const c: Case = {
        name,
        expect: 'any',
        parts: [head, { awaitContinue: true }, body],
        check: (ex) => {
          const problems: string[] = [];
          const first = ex.responses[0];
          if (!first || first.status !== 100) problems.push(`Expect: 100-continue: first answer ${first ? first.statusLine : 'none'}, not "HTTP/1.1 100 Continue"`);
          const final = ex.responses.find((r) => r.status >= 200);
          if (!final || final.status !== 200) problems.push(`Expect: 100-continue on a good request: final answer ${final ? final.statusLine : 'none'}, not 200`);
          if (final && final.status === 200 && wantPod) {
            const podName = header(final, 'x-rasa-pod')[0];
            const pod = pods.find((p) => p.name === podName);
            const id = header(final, 'x-request-id')[0];
            const seen = pod && (pod.recentRequests.find((r) => id !== undefined && r.headers['x-request-id'] === id)?.headers ?? pod.lastHeaders);
            if (!pod || !seen) problems.push('Expect: 100-continue: the final answer did not come from a pod');
            else if (seen.expect !== undefined) problems.push(`Expect: 100-continue: the pod received "expect: ${seen.expect}"`);
          }
          return problems;
        },
      };
      return c;
    };
    const serial: Case[] = [];
    for (let i = 0; i < 5; i++) {
      serial.push(expectCase(`Expect: 100-continue, uncached parse #${i}`, '/model/parse', hello(`expect ${i}`), ['Cache-Control: no-cache'], true));
      serial.push(expectCase(`Expect: 100-continue, webhook #${i}`, '/webhooks/rest/webhook', hook(`expect-${i}`), [], true));
    }
    serial.push(expectCase('Expect: 100-continue, cached parse', PARSE_OK, hello('expect cached'), [], false));
    serial.push(expectCase('Expect: 100-Continue (case), uncached parse', '/model/parse', hello('expect case'), ['Cache-Control: no-cache'], true));
    const noWait: Case = any('Expect: 100-continue with the body sent at once', [json('/model/parse', hello('expect eager'), ['Expect: 100-continue', 'Cache-Control: no-cache'])], {
      check: (ex) => {
        const final = ex.responses.find((r) => r.status >= 200);
        return final && final.status === 200 ? [] : [`Expect: 100-continue with an eager body: final answer ${final ? final.statusLine : 'none'}, not 200`];
      },
    });
    const unknownExpect: Case = any('Expect: something-else', [json('/model/parse', hello('expect other'), ['Expect: something-else', 'Cache-Control: no-cache'])]);
    const overLimit: Case = refuse('Expect: 100-continue over the body limit', [`POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: 70000\r\nExpect: 100-continue\r\n\r\n`], { expectStatus: 413 });
    for (const c of [...serial, noWait, unknownExpect, overLimit]) {
      const results = await runBatch([c], 1);
      const ex = results.get(c) as Exchange;
      for (const kind of judge(c, ex)) add({ kind, caseName: c.name, request: ex.sent, response: summary(ex) });
    }
  });
});

test('JWTs and ?token=: garbage, alg none, wrong alg, expired, null header or claims, bad encoding', async (t) => {
  await runGroup(t, 'auth', authCases());
});

test('afterwards: the same process serves a parse, a webhook and a widget; no ejection, gauges at zero', async (t) => {
  const problems: string[] = [];
  const deaths = generations.filter((g) => g.exit);
  if (deaths.length > 0 || !alive()) problems.push(`the gateway process exited ${deaths.length} time(s) during the battery (the groups above name the requests); it must never exit`);
  await ensureAlive();
  const parse = await fetch(`http://127.0.0.1:${port}/model/parse?token=${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hello after"}' });
  const parseText = await parse.text();
  if (parse.status !== 200) problems.push(`a good parse afterwards: ${parse.status} ${parseText}`);
  const uncached = await fetch(`http://127.0.0.1:${port}/model/parse`, { method: 'POST', headers: { 'content-type': 'application/json', 'cache-control': 'no-cache' }, body: '{"text":"hello after"}' });
  const uncachedText = await uncached.text();
  if (uncached.status !== 200) problems.push(`a good uncached parse afterwards: ${uncached.status} ${uncachedText}`);
  const webhook = await fetch(`http://127.0.0.1:${port}/webhooks/rest/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sender":"after","message":"hi"}' });
  const webhookText = await webhook.text();
  if (webhook.status !== 200 || !webhookText.includes('echo: hi')) problems.push(`a good webhook afterwards: ${webhook.status} ${webhookText}`);
  const chat = await widgetChat('after-widget');
  if (chat) problems.push(`a socket.io-client session afterwards: ${chat}`);
  const text = await scrape();
  const ejections = metricValue(text, 'gateway_ejections_total') ?? 0;
  if (ejections !== 0) problems.push(`gateway_ejections_total is ${ejections} (this process), not 0:\n${metricLines(text, 'gateway_ejections_total')}`);
  if (clientEjections.length > 0) problems.push(`client behaviour ejected pods during the battery: ${clientEjections.join('; ')}`);
  if (notReadyAfter.length > 0) problems.push(`endpoints left state ready during the battery: ${notReadyAfter.join('; ')}`);
  const view = (await debugPools(adminUrl))[0]!;
  for (const e of view.endpoints) if (e.state !== 'ready') problems.push(`endpoint ${e.pod} (${e.url}) is ${e.state}, not ready`);
  const leak = await settledWithin(5000);
  if (leak) problems.push(`in-flight / queue not back to zero: ${leak}`);
  // Hostile input is the client's fault: it is refused as such, never an exception inside the gateway.
  const internal = metricValue(text, 'gateway_internal_errors_total') ?? 0;
  if (internal !== 0) problems.push(`gateway_internal_errors_total is ${internal}:\n${metricLines(text, 'gateway_internal_errors_total')}`);
  if (generations.length !== 1) problems.push(`the gateway process was restarted ${generations.length - 1} time(s) after crashing`);
  t.diagnostic(`process generations: ${generations.length}; pod requests seen: ${pods.map((p) => `${p.name}=${p.requestsSeen}`).join(', ')}; seed ${SEED}`);
  assert.deepEqual(problems, [], problems.join('\n'));
});

/** A chat widget's session through the gateway (polling, then websocket); undefined when it worked. */
async function widgetChat(sessionId: string): Promise<string | undefined> {
  const socket: ClientSocket = ioClient(`http://127.0.0.1:${port}`, { path: '/socket.io/', transports: ['polling', 'websocket'], reconnection: false, forceNew: true, timeout: 3000 });
  try {
    const outcome = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve('no bot_uttered within 5 s'), 5000);
      socket.on('connect_error', (err) => {
        clearTimeout(timer);
        resolve(`connect_error ${err.message}`);
      });
      socket.on('connect', () => {
        socket.emit('session_request', { session_id: sessionId });
        socket.once('session_confirm', () => socket.emit('user_uttered', { message: 'hello', session_id: sessionId }));
      });
      socket.on('bot_uttered', (m: { text?: string }) => {
        clearTimeout(timer);
        resolve(m.text === 'echo: hello' ? undefined : `unexpected reply ${JSON.stringify(m)}`);
      });
    });
    return outcome;
  } finally {
    socket.disconnect();
  }
}
