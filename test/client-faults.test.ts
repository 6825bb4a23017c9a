/**
 * What a client does never counts against a pod, and whatever goes wrong inside the gateway ends one
 * request only. Each finding of the hostile-input review has its test here: `Expect: 100-continue`
 * (once a 502 and an ejection), hop-by-hop headers in both directions (once a socket left open after
 * `Connection: close`), foreign error codes (once `FST_ERR_BAD_URL`), and the per-request error
 * boundary, driven by faults injected into a real gateway on loopback.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, afterEach, test } from 'node:test';
import { errorCatalog } from '../src/errors.js';
import { RequestContext } from '../src/proxy/request-context.js';
import { debugPools, get, Harness, metricValue, post, settled } from './helpers/harness.js';

const h = new Harness();
afterEach(() => h.stopAll());

interface RawAnswer {
  /** Everything the server sent, 1xx answers included. */
  text: string;
  /** Whether the server closed the connection before our own timeout. */
  closedByServer: boolean;
}

/** Writes raw bytes (optionally in two parts, the second once the first answer line arrives) and collects the answer. */
function raw(url: string, first: string, second?: string, waitMs = 2000): Promise<RawAnswer> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    let sentSecond = second === undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closedByServer: false });
    }, waitMs);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!sentSecond && text.includes('\r\n\r\n')) {
        sentSecond = true;
        socket.write(Buffer.from(second as string, 'latin1'));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedByServer: true });
    });
    socket.on('error', () => {});
    socket.write(Buffer.from(first, 'latin1')); // one char, one byte: tests send exact bytes
  });
}

/** The last HTTP answer in a raw exchange: status, lower-cased headers, body. */
function lastAnswer(text: string): { status: number; headers: Record<string, string>; body: string } {
  const start = text.lastIndexOf('HTTP/1.');
  const end = text.indexOf('\r\n\r\n', start);
  const [statusLine, ...lines] = text.slice(start, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine?.split(' ')[1]), headers, body: text.slice(end + 4) };
}

/** An upstream that records the headers of every request it gets and answers with a keep-alive connection. */
async function recordingUpstream(): Promise<{ url: string; seen: IncomingHttpHeaders[]; bodies: Buffer[]; server: Server }> {
  const seen: IncomingHttpHeaders[] = [];
  const bodies: Buffer[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks));
      res.setHeader('keep-alive', 'timeout=30');
      res.setHeader('connection', 'keep-alive, x-pod-private');
      res.setHeader('x-pod-private', 'for the next hop only');
      res.setHeader('proxy-connection', 'keep-alive');
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, seen, bodies, server };
}

const upstreams: Server[] = [];
after(() => Promise.all(upstreams.map((s) => new Promise((r) => s.close(r)))));

test('Expect: 100-continue is answered by the gateway, never forwarded, and ejects no pod', async () => {
  const pods = await h.podSet(4, { name: 'expect', slots: 2, serviceTimeMs: 2 });
  const gw = await h.gateway({ pools: { rasa: { endpoints: pods.map((p) => p.url), ejection: { consecutiveFailures: 2 } } } });
  const body = '{"text":"hello"}';
  for (let i = 0; i < 10; i++) {
    const head = `POST /model/parse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    const answer = await raw(gw.publicUrl, head, body);
    assert.match(answer.text, /^HTTP\/1\.1 100 Continue\r\n/, 'the interim answer comes first');
    const final = lastAnswer(answer.text);
    assert.equal(final.status, 200, answer.text);
    assert.equal(JSON.parse(final.body).text, 'hello');
  }
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_ejections_total') ?? 0, 0, 'no pod was ejected');
  assert.ok((await debugPools(gw.adminUrl))[0]!.endpoints.every((e) => e.state === 'ready'));
  assert.equal(pods.reduce((n, p) => n + (p.counts.get('POST /model/parse') ?? 0), 0), 10, 'each request reached one pod once: no retry');
  await settled(gw.adminUrl);
});

test('Expect: 100-continue with a body over the limit is refused before the body is sent', async () => {
  const pod = await h.pod({ name: 'expect-413' });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [pod.url], bodyLimitBytes: 1024 } } });
  const answer = await raw(gw.publicUrl, 'POST /model/parse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
  assert.doesNotMatch(answer.text, /100 Continue/, 'no invitation to send what will be refused');
  assert.equal(lastAnswer(answer.text).status, 413);
  assert.equal(JSON.parse(lastAnswer(answer.text).body).error.code, 'BODY_TOO_LARGE');
  assert.ok(answer.closedByServer);
  assert.equal(pod.counts.size, 0);
});

test('an Expect value other than 100-continue gets 417 from the catalog and reaches no pod', async () => {
  const pod = await h.pod({ name: 'expect-417' });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [pod.url] } } });
  // The body is never sent: a client that asked for an expectation waits for the answer first.
  const answer = await raw(gw.publicUrl, 'POST /model/parse HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\n');
  const final = lastAnswer(answer.text);
  assert.equal(final.status, errorCatalog.EXPECTATION_FAILED.status);
  assert.equal(JSON.parse(final.body).error.code, 'EXPECTATION_FAILED');
  assert.equal(pod.counts.size, 0);
});

test('hop-by-hop headers are stripped both ways and Connection: close closes the socket', async () => {
  const upstream = await recordingUpstream();
  upstreams.push(upstream.server);
  const gw = await h.gateway({ pools: { rasa: { endpoints: [upstream.url] } } });
  const request =
    'GET /version HTTP/1.1\r\nHost: x\r\nConnection: close, x-client-private\r\nX-Client-Private: secret\r\n' +
    'Keep-Alive: timeout=99\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x-checksum\r\nUpgrade: h2c\r\n\r\n';
  const answer = await raw(gw.publicUrl, request);
  assert.ok(answer.closedByServer, 'the gateway closed the socket after the answer');
  const final = lastAnswer(answer.text);
  assert.equal(final.status, 200);
  assert.equal(final.headers.connection, 'close');
  for (const name of ['keep-alive', 'proxy-connection', 'x-pod-private']) assert.equal(final.headers[name], undefined, `${name} reached the client`);
  const seen = upstream.seen.at(-1) as IncomingHttpHeaders;
  for (const name of ['x-client-private', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect']) {
    assert.equal(seen[name], undefined, `${name} reached the pod`);
  }
  // HTTP/1.0 without keep-alive: answered, then closed.
  const old = await raw(gw.publicUrl, 'GET /version HTTP/1.0\r\nHost: x\r\n\r\n');
  assert.ok(old.closedByServer, 'an HTTP/1.0 client is answered and its socket closed');
  assert.equal(lastAnswer(old.text).status, 200);
  assert.equal(lastAnswer(old.text).headers['keep-alive'], undefined);
});

test('a chunked request body reaches the pod with its length, not its client framing', async () => {
  const upstream = await recordingUpstream();
  upstreams.push(upstream.server);
  const gw = await h.gateway({ pools: { rasa: { endpoints: [upstream.url], ejection: { consecutiveFailures: 1 } } } });
  const answer = await raw(gw.publicUrl, 'POST /model/parse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n');
  assert.equal(lastAnswer(answer.text).status, 200, answer.text);
  const seen = upstream.seen.at(-1) as IncomingHttpHeaders;
  assert.equal(seen['content-length'], '7');
  assert.equal(seen['transfer-encoding'], undefined);
});

test('a text/plain body reaches the pod byte for byte, invalid UTF-8 included', async () => {
  const upstream = await recordingUpstream();
  upstreams.push(upstream.server);
  const gw = await h.gateway({ pools: { rasa: { endpoints: [upstream.url] } } });
  const body = Buffer.from([0x34, 0x32, 0xff, 0xfe, 0xc3, 0x28, 0x0a]);
  const head = `POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  const answer = await raw(gw.publicUrl, head + body.toString('latin1'));
  assert.equal(lastAnswer(answer.text).status, 200, answer.text);
  assert.deepEqual(upstream.bodies.at(-1), body);
  assert.equal(upstream.seen.at(-1)?.['content-length'], String(body.length));
});

test('what the framework or the HTTP parser refuses is answered from the catalog, with its status', async () => {
  const pod = await h.pod({ name: 'catalog' });
  const gw = await h.gateway({ limits: { maxHeaderBytes: 4096 }, pools: { rasa: { endpoints: [pod.url] } } });
  const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\n';
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const cases: [string, string][] = [
    ['GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'BAD_REQUEST'],
    ['GET /conversations/%E0%A4%A/tracker HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'BAD_REQUEST'],
    ['GET /../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'BAD_REQUEST'],
    ['OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'BAD_REQUEST'],
    ['PROPFIND /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'METHOD_NOT_ALLOWED'],
    [`GET /version HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(8000)}\r\n\r\n`, 'HEADERS_TOO_LARGE'],
    ['GET /version HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'BAD_REQUEST'],
    ['BREW /version HTTP/1.1\r\nHost: x\r\n\r\n', 'BAD_REQUEST'],
    [`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n${ws}Sec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n`, 'BAD_REQUEST'],
    [`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n${ws}Sec-WebSocket-Version: 13\r\n\r\n`, 'BAD_REQUEST'],
    [`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n${ws}Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 99\r\n\r\n`, 'BAD_REQUEST'],
    [`GET /version HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n`, 'BAD_REQUEST'],
  ];
  for (const [request, code] of cases) {
    const answer = await raw(gw.publicUrl, request);
    const final = lastAnswer(answer.text);
    const label = JSON.stringify(request.slice(0, 60));
    assert.equal(final.status, errorCatalog[code as keyof typeof errorCatalog].status, `${label}: ${answer.text.slice(0, 300)}`);
    assert.equal(JSON.parse(final.body).error.code, code, label);
    assert.doesNotMatch(final.body, /\n\s+at |node:internal|dist\//, 'no stack trace reaches a client');
  }
  assert.equal(pod.counts.size, 0, 'nothing refused reached the pod');
  // The absolute-form is HTTP/1.1 and is routed by its path; the authority it names is never used.
  const absolute = await raw(gw.publicUrl, 'GET http://elsewhere.example/version?x=1 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n');
  assert.equal(lastAnswer(absolute.text).status, 200);
  assert.equal(lastAnswer(absolute.text).headers['x-rasa-pod'], 'catalog');
});

test('an exception anywhere on the request path ends that request only: 500 INTERNAL, counted by stage, slot and turn released', async () => {
  const pod = await h.pod({ name: 'boundary', slots: 1, serviceTimeMs: 5 });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [pod.url], affinity: 'rasa' } } });
  const runtime = gw.gateway.pools.get('rasa')!;
  const affinity = runtime.affinity!;

  // Synchronous, in admission: the conversation's pod lookup throws while the request holds its turn.
  const backendFor = affinity.backendFor.bind(affinity);
  affinity.backendFor = (key: string) => {
    if (key === 'poison') throw new Error('injected: backendFor');
    return backendFor(key);
  };
  const poisoned = await post<{ error: { code: string; message: string } }>(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'poison', message: 'hi' });
  assert.equal(poisoned.status, 500);
  assert.equal(poisoned.body.error.code, 'INTERNAL');
  assert.doesNotMatch(poisoned.text, /injected|\n\s+at /, 'neither the message nor the stack reaches the client');

  // After the pod answered, in reply-from's callback: the response step throws.
  const responded = RequestContext.prototype.responded;
  let armed = true;
  RequestContext.prototype.responded = function (this: RequestContext, now: number, status: number) {
    if (armed) {
      armed = false;
      throw new Error('injected: responded');
    }
    return responded.call(this, now, status);
  };
  try {
    const broken = await post<{ error: { code: string } }>(`${gw.publicUrl}/model/parse`, { text: 'x' });
    assert.equal(broken.status, 500);
    assert.equal(broken.body.error.code, 'INTERNAL');
  } finally {
    RequestContext.prototype.responded = responded;
  }

  // The same conversation again (its turn was released) and everything else: served.
  affinity.backendFor = backendFor;
  assert.equal((await post(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'poison', message: 'again' })).status, 200);
  assert.equal((await post(`${gw.publicUrl}/model/parse`, { text: 'fine' })).status, 200);
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_internal_errors_total', { pool: 'rasa', stage: 'admit' }), 1);
  assert.equal(metricValue(scrape, 'gateway_internal_errors_total', { pool: 'rasa', stage: 'response' }), 1);
  assert.equal(metricValue(scrape, 'gateway_ejections_total') ?? 0, 0, 'the gateway\'s own faults eject no pod');
  await settled(gw.adminUrl);
});

test('a client request id is kept when plausible and replaced when hostile', async () => {
  const pod = await h.pod({ name: 'reqid' });
  const gw = await h.gateway({ pools: { rasa: { endpoints: [pod.url] } } });
  const kept = await fetch(`${gw.publicUrl}/version`, { headers: { 'x-request-id': 'trace-1234.abc' } });
  assert.equal(kept.headers.get('x-request-id'), 'trace-1234.abc');
  for (const hostile of ['x'.repeat(5000), 'a b', 'id;drop', '\u00ff\u00fe']) {
    const res = await fetch(`${gw.publicUrl}/version`, { headers: { 'x-request-id': hostile } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, 'a fresh id instead');
  }
});
