/**
 * The live status page (issue 7): the sampler on its own (lazy start, idle stop, percentiles), the
 * routes over plain HTTP against the demo (admin listener only, JSON and event shapes, read-only), and
 * end to end in headless Chromium (Debian's package, driven by playwright-core): every demo pod shows,
 * the numbers move under load, the weak pod's share is smaller. Screenshot: test-artifacts/status-page.png.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { validateConfig } from '../src/config.js';
import { Gateway } from '../src/gateway.js';
import { quantile, StatusSampler, type StatusSnapshot } from '../src/admin/status/sampler.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const artifacts = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const demoScript = fileURLToPath(new URL('../src/demo.js', import.meta.url));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value that isn't undefined/false; fails with `what` after `timeoutMs`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------------
// The sampler on its own: a fake clock, ticks by hand.

test('quantile interpolates like histogram_quantile', () => {
  const h = { les: [0.1, 0.2, 0.5, Infinity], counts: [0, 10, 10, 10] };
  assert.ok(Math.abs(quantile(0.5, h)! - 0.15) < 1e-9);
  assert.equal(quantile(0.5, { les: [0, 0.1, Infinity], counts: [4, 4, 4] }), 0);
  assert.equal(quantile(0.95, { les: [0.1, 0.2, Infinity], counts: [1, 1, 10] }), 0.2, 'a rank in +Inf gives the highest finite bound');
  assert.equal(quantile(0.5, { les: [0.1, Infinity], counts: [0, 0] }), null);
});

test('the sampler starts on first use, keeps running while watched and stops when idle', async () => {
  const gateway = await Gateway.create(
    validateConfig({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'silent' },
      pools: { nlu: { endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] } },
      routes: [{ prefix: '/', pool: 'nlu' }],
    }),
    { defaultMetrics: false },
  );
  for (const { pool, discovery } of gateway.pools.values()) await discovery.start((eps) => pool.update(eps));
  let now = 1_000_000;
  const sampler = new StatusSampler({ pools: gateway.pools, registry: gateway.metrics.registry, idleMs: 60_000, now: () => now });
  try {
    assert.equal(sampler.running, false, 'nothing runs before anyone asks');
    await sampler.touch();
    assert.equal(sampler.running, true);
    let snap: StatusSnapshot = sampler.snapshot();
    assert.equal(snap.seq, 1);
    assert.equal(snap.pools[0]!.requestRate, null, 'no rate from a single sample');
    assert.equal(snap.pools[0]!.endpoints.length, 2);

    gateway.pools.get('nlu')!.metrics.request(200);
    now += 1000;
    await sampler.tick();
    snap = sampler.snapshot();
    assert.equal(snap.seq, 2);
    assert.equal(snap.pools[0]!.requestRate, 1);
    assert.equal(snap.pools[0]!.retryRate, 0, 'no retries yet');
    assert.deepEqual(sampler.snapshot(1).pools[0]!.history, { ...snap.pools[0]!.history, fromSeq: 2, full: false, queueLength: [0], requestRate: [1], p95Ms: [null] });

    let calls = 0;
    const unsubscribe = sampler.subscribe(() => calls++);
    await waitFor('the first call to a new subscriber', () => calls > 0);
    now += 10 * 60_000;
    await sampler.tick();
    assert.equal(sampler.running, true, 'an open stream keeps it sampling');
    unsubscribe();
    now += 60_001;
    await sampler.tick();
    assert.equal(sampler.running, false, 'stops once idle');
    assert.equal(sampler.snapshot().pools[0]!.history.queueLength.length, 0, 'and forgets its history');
  } finally {
    sampler.stop();
  }
});

test('an open event stream does not hold up shutdown', { timeout: 60_000 }, async () => {
  const gateway = await Gateway.create(
    validateConfig({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'silent' },
      pools: { nlu: { endpoints: ['http://127.0.0.1:1'] } },
      routes: [{ prefix: '/', pool: 'nlu' }],
    }),
    { defaultMetrics: false },
  );
  const { adminUrl } = await gateway.start();
  const res = await fetch(`${adminUrl}/status/events`);
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  await reader.read();
  await gateway.shutdown(100);
  await reader.cancel().catch(() => undefined);
});

// ---------------------------------------------------------------------------------------------------
// Against the demo, as `npm run demo` runs it.

interface Demo {
  readonly child: ChildProcess;
  readonly gatewayUrl: string;
  readonly adminUrl: string;
  /** Pod name (rasa-0 ...) -> host:port, which is how the gateway names static endpoints. */
  readonly pods: Map<string, string>;
}

let demo: Demo | undefined;

before(async () => {
  const child = spawn(process.execPath, [demoScript], {
    env: { ...process.env, GATEWAY_PORT: '0', ADMIN_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  let exited = false;
  child.once('exit', () => (exited = true));
  process.once('exit', () => child.kill('SIGKILL')); // never leave the demo behind, even on a crash
  await waitFor(`the demo to print its URLs (output so far: ${JSON.stringify(out)})`, () => {
    if (exited) throw new Error(`the demo exited: ${out}`);
    return /Ctrl-C to stop/.test(out);
  });
  const gatewayUrl = /gateway\s+(http:\/\/\S+)/.exec(out)?.[1];
  const adminUrl = /status\s+(http:\/\/\S+?)\/?\s/.exec(out)?.[1];
  assert.ok(gatewayUrl && adminUrl, `demo output without URLs: ${out}`);
  const pods = new Map<string, string>();
  // The demo names its pods (static endpoints with `name`): the page shows the names.
  for (const m of out.matchAll(/pod (\S+)\s+(http:\/\/\S+)/g)) pods.set(m[1]!, m[1]!);
  assert.equal(pods.size, 4, `expected 4 demo pods: ${out}`);
  demo = { child, gatewayUrl, adminUrl, pods };
});

after(async () => {
  if (!demo || demo.child.exitCode !== null) return;
  const exited = new Promise((resolve) => demo!.child.once('exit', resolve));
  demo.child.kill('SIGTERM');
  await exited;
});

function theDemo(): Demo {
  assert.ok(demo, 'the demo did not start');
  return demo;
}

test('the page and its JSON are served by the admin listener only', async () => {
  const { adminUrl, gatewayUrl, pods } = theDemo();
  const page = await fetch(`${adminUrl}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  const html = await page.text();
  assert.match(html, /<title>rasa-gateway status<\/title>/);
  assert.doesNotMatch(html, /<(script|link)[^>]+(src|href)="(https?:)?\/\//, 'no external assets');

  const pub = await fetch(`${gatewayUrl}/`);
  assert.doesNotMatch(await pub.text(), /rasa-gateway status/, 'the public listener proxies /, it does not serve the page');

  const json = await fetch(`${adminUrl}/status.json`);
  assert.equal(json.status, 200);
  assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
  const snap = (await json.json()) as StatusSnapshot;
  assert.equal(snap.version, 1);
  assert.equal(typeof snap.time, 'number');
  assert.deepEqual(snap.pools.map((p) => p.name), ['rasa']);
  for (const p of snap.pools) {
    assert.equal(typeof p.queueLength, 'number');
    assert.equal(typeof p.inflight, 'number');
    assert.ok(p.requestRate === null || typeof p.requestRate === 'number');
    assert.ok(p.queueWaitMs === null || (typeof p.queueWaitMs.p50 === 'number' && typeof p.queueWaitMs.p95 === 'number'));
    assert.ok(Array.isArray(p.history.queueLength) && Array.isArray(p.history.p95Ms) && Array.isArray(p.history.requestRate));
    assert.deepEqual(p.endpoints.map((e) => e.pod).sort(), [...pods.values()].sort());
    assert.ok(p.capacity, 'desired against current pods, from the capacity estimate');
    assert.equal(p.capacity.currentPods, pods.size);
    assert.equal(p.capacity.slots, 2);
    assert.equal(typeof p.capacity.desiredPods, 'number');
    assert.equal(typeof p.capacity.ratePerS, 'number');
    for (const e of p.endpoints) {
      assert.equal(e.state, 'ready');
      assert.equal(e.slots, 2);
      for (const k of ['inflight', 'sessions', 'latencyEwmaMs', 'requests', 'failures'] as const) assert.equal(typeof e[k], 'number', k);
    }
  }

  const events = await fetch(`${adminUrl}/status/events`);
  assert.equal(events.status, 200);
  assert.match(events.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = events.body!.getReader();
  let text = '';
  const first = await waitFor('a first server-sent event', async () => {
    const { value, done } = await reader.read();
    if (done) throw new Error('stream ended');
    text += Buffer.from(value).toString('utf8');
    return /^data: (.*)$/m.exec(text)?.[1];
  });
  await reader.cancel();
  const event = JSON.parse(first) as StatusSnapshot;
  assert.equal(event.pools.length, 1);
  assert.equal(event.pools[0]!.history.full, true, 'a new stream starts with the whole history');
});

test('the status routes are read-only', async () => {
  const { adminUrl } = theDemo();
  for (const path of ['/', '/status.json', '/status/events']) {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const res = await fetch(`${adminUrl}${path}`, { method, headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
      await res.arrayBuffer();
    }
  }
  const head = await fetch(`${adminUrl}/`, { method: 'HEAD' });
  assert.equal(head.status, 200);
});

interface Row {
  readonly pod: string;
  readonly inflight: number;
  readonly rate: number;
  readonly served: number;
  readonly share: string;
}

/** The endpoint rows of one pool as the page shows them. */
async function rows(page: Page, pool: string): Promise<Row[]> {
  const raw = (await page.evaluate(`[...document.querySelectorAll('section[data-pool="${pool}"] tbody tr')].map((tr) => {
    const k = (name) => tr.querySelector('[data-k="' + name + '"]')?.textContent ?? '';
    return { pod: tr.getAttribute('data-pod'), inflight: k('inflight'), rate: k('rate'), served: k('served'), share: k('share') };
  })`)) as { pod: string; inflight: string; rate: string; served: string; share: string }[];
  const n = (s: string) => Number(s.replace(/,/g, '').split('/')[0]!.trim());
  return raw.map((r) => ({ pod: r.pod, inflight: n(r.inflight), rate: n(r.rate), served: n(r.served), share: r.share }));
}

test('in headless Chromium the page shows every pod, live numbers and the weak pod\'s smaller share', { timeout: 120_000 }, async () => {
  const { adminUrl, gatewayUrl, pods } = theDemo();
  assert.ok(
    existsSync(CHROMIUM),
    `Chromium is missing at ${CHROMIUM}: install Debian's package (apt-get install -y chromium); this test drives it with playwright-core and never downloads a browser`,
  );
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    });
    await page.goto(`${adminUrl}/`);

    const hosts = [...pods.values()];
    for (const pool of ['rasa']) {
      const shown = await waitFor(`every demo pod in pool ${pool}`, async () => {
        const r = await rows(page, pool);
        return hosts.every((h) => r.some((row) => row.pod === h)) ? r : undefined;
      });
      assert.equal(shown.length, hosts.length);
    }
    assert.match((await page.textContent('#conn')) ?? '', /live/);
    const before = new Map((await rows(page, 'rasa')).map((r) => [r.pod, r.served]));

    // 90 parses over about three seconds; the pool's 8 slots take ~22/s, so a queue builds and drains.
    const REQUESTS = 90;
    let sawActivity = false;
    let shot = false;
    mkdirSync(artifacts, { recursive: true });
    const load = (async () => {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < REQUESTS; i++) {
        pending.push(
          fetch(`${gatewayUrl}/model/parse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hi"}' }).then((r) => r.text()),
        );
        await sleep(33);
      }
      return Promise.all(pending);
    })();
    let loadDone = false;
    void load.then(() => (loadDone = true), () => (loadDone = true));

    const served = async () => {
      const r = await rows(page, 'rasa');
      if (r.some((row) => row.inflight > 0 || row.rate > 0)) sawActivity = true;
      return r.reduce((sum, row) => sum + row.served - (before.get(row.pod) ?? 0), 0);
    };
    // The screenshot under load: once half the burst was served, while the rest is queued or in flight.
    await waitFor('the page to show the burst being served', async () => {
      const n = await served();
      if (!shot && (n >= REQUESTS / 2 || (loadDone && n >= REQUESTS))) {
        await page.screenshot({ path: `${artifacts}status-page.png`, fullPage: true });
        shot = true;
      }
      return shot;
    });
    const results = await load;
    assert.equal(results.length, REQUESTS);
    await waitFor(`the page to show all ${REQUESTS} requests served`, async () => (await served()) >= REQUESTS);

    const after = await rows(page, 'rasa');
    assert.ok(sawActivity, 'the page showed requests in flight or a request rate above zero');
    for (const row of after) assert.ok(row.served > (before.get(row.pod) ?? 0), `pod ${row.pod} served more requests`);
    const weakHost = pods.get('rasa-weak-3');
    assert.ok(weakHost, 'the demo has a weak pod');
    const weak = after.find((r) => r.pod === weakHost)!;
    for (const row of after) {
      if (row.pod !== weakHost) assert.ok(weak.served < row.served, `weak pod served ${weak.served}, fewer than ${row.pod}'s ${row.served}`);
    }
    const kpis = (await page.textContent('section[data-pool="rasa"] .kpis')) ?? '';
    assert.match(kpis, /Pods: now \/ desired/, 'the pool shows desired against current pods');
    assert.match(kpis, /[\d.]+ req\/s × [\d.]+ (ms|s), 2 slots/, 'with the rate and service time they come from');
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await browser?.close();
  }
});
