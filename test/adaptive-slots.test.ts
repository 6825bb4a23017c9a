/**
 * `slotsPerEndpoint: auto` end to end: its config, and a real gateway in front of emulated pods with
 * 1, 2 and 4 real slots that learns each pod's slots from latency alone, over HTTP.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig, validateConfig } from '../src/config.js';
import type { RasaPod } from '../src/emulator/rasa-pod.js';
import { debugPools, get, Harness, metricValue, waitFor } from './helpers/harness.js';

function fails(doc: unknown, field: RegExp, detail: RegExp): void {
  assert.throws(
    () => validateConfig(doc),
    (err: unknown) => err instanceof ConfigError && field.test(err.field) && detail.test(err.message),
  );
}

const pool = (extra: Record<string, unknown>) => ({ pools: { p: { endpoints: ['http://10.0.0.1:5005'], ...extra } } });

test('config: `auto` slots with minSlots and maxSlots; errors name the field', () => {
  const auto = validateConfig(pool({ slotsPerEndpoint: 'auto' })).pools.p!;
  assert.deepEqual(auto.adaptiveSlots, { minSlots: 1, maxSlots: 16 });
  assert.equal(auto.slotsPerEndpoint, 1, 'a pod starts at minSlots');
  assert.equal(auto.dispatch, 'earliest-completion');
  const bounded = validateConfig(pool({ slotsPerEndpoint: 'auto', minSlots: 2, maxSlots: 6, dispatch: 'greedy' })).pools.p!;
  assert.deepEqual(bounded.adaptiveSlots, { minSlots: 2, maxSlots: 6 });
  assert.equal(bounded.dispatch, 'greedy');
  const fixed = validateConfig(pool({ slotsPerEndpoint: 3 })).pools.p!;
  assert.equal(fixed.adaptiveSlots, undefined);
  assert.equal(fixed.dispatch, 'earliest-completion', 'pools with slots dispatch by expected completion by default');
  assert.equal(validateConfig(pool({ slotsPerEndpoint: 3, dispatch: 'earliest-completion' })).pools.p!.dispatch, 'earliest-completion');
  assert.equal(validateConfig(pool({ slotsPerEndpoint: 'unlimited' })).pools.p!.slotsPerEndpoint, Infinity);

  fails(pool({ minSlots: 2 }), /^pools\.p\.minSlots$/, /only applies with `slotsPerEndpoint: auto`/);
  fails(pool({ slotsPerEndpoint: 4, maxSlots: 8 }), /^pools\.p\.maxSlots$/, /only applies with `slotsPerEndpoint: auto` \(slotsPerEndpoint is 4\)/);
  fails(pool({ slotsPerEndpoint: 'auto', minSlots: 0 }), /^pools\.p\.minSlots$/, /integer from 1/);
  fails(pool({ slotsPerEndpoint: 'auto', minSlots: 4, maxSlots: 2 }), /^pools\.p\.maxSlots$/, /at least minSlots \(4\)/);
  fails(pool({ slotsPerEndpoint: 'auto', minSlots: 20 }), /^pools\.p\.maxSlots$/, /at least minSlots \(20\); got 16 \(the default\)/);
  fails(pool({ slotsPerEndpoint: 'automatic' }), /^pools\.p\.slotsPerEndpoint$/, /`auto` or `unlimited`/);
  fails(pool({ slotsPerEndpoint: 'unlimited', dispatch: 'earliest-completion' }), /^pools\.p\.dispatch$/, /needs slots/);
  fails(pool({ dispatch: 'fastest' }), /^pools\.p\.dispatch$/, /greedy, earliest-completion/);

  const quick = loadConfig(['--upstream', 'http://10.0.0.1:5005', '--slots', 'auto']).config!;
  assert.deepEqual(quick.pools.default!.adaptiveSlots, { minSlots: 1, maxSlots: 16 });
});

/** Keeps `clients` webhook requests outstanding against the gateway until stopped. */
function sustain(url: string, clients: number): { stop(): Promise<void>; errors: () => number } {
  let running = true;
  let errors = 0;
  let n = 0;
  const client = async () => {
    while (running) {
      try {
        const res = await fetch(`${url}/webhooks/rest/webhook`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sender: `load-${n++}`, message: 'hello' }),
        });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      } catch {
        errors++;
      }
    }
  };
  const all = Promise.all(Array.from({ length: clients }, client));
  return {
    async stop() {
      running = false;
      await all;
    },
    errors: () => errors,
  };
}

interface Learned {
  slots: number;
  /** Slots seen running at once without queueing; the limit may be one above while probing. */
  proven: number;
}

async function learnedByPod(adminUrl: string): Promise<Record<string, Learned>> {
  const [view] = await debugPools(adminUrl);
  return Object.fromEntries(view!.endpoints.map((e) => [e.pod, { slots: e.slots as number, proven: (e as { provenSlots?: number }).provenSlots ?? 0 }]));
}

/** Waits until `check` has held for `times` polls in a row. */
async function waitSteady(what: string, adminUrl: string, check: (learned: Record<string, Learned>) => boolean, timeoutMs: number, times = 10) {
  let streak = 0;
  return waitFor(
    what,
    async () => {
      const learned = await learnedByPod(adminUrl);
      streak = check(learned) ? streak + 1 : 0;
      return streak >= times ? learned : undefined;
    },
    timeoutMs,
  );
}

async function gatewayFor(h: Harness, pods: readonly RasaPod[]) {
  return h.gateway({
    pools: { p: { endpoints: pods.map((p) => ({ url: p.url, name: p.name })), slotsPerEndpoint: 'auto', maxSlots: 8 } },
  });
}

test('pods with 1, 2 and 4 real slots converge to their slot counts under sustained load', async (t) => {
  const h = new Harness();
  t.after(() => h.stopAll());
  const truth: Record<string, number> = { one: 1, two: 2, four: 4 };
  const pods = [];
  for (const [name, slots] of Object.entries(truth)) pods.push(await h.pod({ name, slots, serviceTimeMs: 100 }));
  const gw = await gatewayFor(h, pods);
  const start = await learnedByPod(gw.adminUrl);
  assert.deepEqual(Object.values(start).map((l) => l.slots), [1, 1, 1], 'every pod starts at minSlots');
  const load = sustain(gw.publicUrl, 14);
  try {
    const learned = await waitSteady(
      'each pod running exactly its true slots, its limit within one',
      gw.adminUrl,
      (s) => Object.entries(truth).every(([pod, k]) => s[pod]?.proven === k && Math.abs(s[pod].slots - k) <= 1),
      60_000,
    );
    for (const [pod, k] of Object.entries(truth)) assert.equal(learned[pod]!.proven, k, `${pod}: ran ${learned[pod]!.proven} at once for ${k} real slots`);
    // The same learned limits are what Prometheus sees.
    const scrape = (await get<string>(`${gw.adminUrl}/metrics`)).text;
    const [view] = await debugPools(gw.adminUrl);
    for (const e of view!.endpoints) {
      const metric = metricValue(scrape, 'gateway_endpoint_slots', { pool: 'p', endpoint: e.url });
      assert.ok(metric !== undefined && Math.abs(metric - (truth[e.pod] ?? 0)) <= 1, `${e.pod}: gateway_endpoint_slots ${metric}`);
    }
  } finally {
    await load.stop();
  }
  assert.equal(load.errors(), 0);
});

// A pod whose service time changes (slots lost, then regained) is covered deterministically on the
// virtual clock in test/concurrency-limit.test.ts: over real HTTP its timing depended on the machine's load.
