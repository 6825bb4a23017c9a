/**
 * The prometheus-adapter rule that drives the HPA, evaluated on real scrapes of two gateway replicas:
 * the demand it reports must equal the requests both replicas hold (in flight + queued).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { debugPools, get, Harness, post, waitFor } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A Prometheus text scrape as the samples Prometheus stores, with the target labels it adds. */
function scrape(text: string, target: Record<string, string>): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    out.push({ name: m[1]!, labels: { ...labels, ...target }, value: Number(m[3]) });
  }
  return out;
}

/** Evaluates the adapter's query shape: a sum of `sum(metric{matchers}) by (pool)` terms. */
function evaluate(query: string, samples: Sample[]): Map<string, number> {
  const result = new Map<string, number>();
  for (const term of query.split(/\)\s*by\s*\(pool\)\s*\+?/).map((t) => t.trim()).filter(Boolean)) {
    const m = /^sum\(([a-z_]+)\{([^}]*)\}$/.exec(term);
    assert.ok(m, `unexpected term ${term}`);
    const matchers = [...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!] as const);
    for (const s of samples) {
      if (s.name !== m[1] || !matchers.every(([k, v]) => s.labels[k] === v)) continue;
      result.set(s.labels.pool!, (result.get(s.labels.pool!) ?? 0) + s.value);
    }
  }
  return result;
}

test('the adapter rule, evaluated on two replicas\' scrapes, equals in-flight + queued of the pool', async () => {
  const pods = await h.podSet(2, { name: 'demand', slots: 8 });
  for (const p of pods) p.mode = 'hang';
  const doc = { pools: { dialog: { endpoints: pods.map((p) => p.url), slotsPerEndpoint: 2, upstreamTimeoutMs: 60_000, queue: { maxLength: 100, maxWaitMs: 60_000 } } } };
  const a = await h.gateway(doc);
  const b = await h.gateway(doc);
  const aborts = new AbortController();
  const hold = (url: string, n: number) => Array.from({ length: n }, () => post(`${url}/model/parse`, { text: 'x' }, { signal: aborts.signal }).catch(() => undefined));
  const pending = [...hold(a.publicUrl, 7), ...hold(b.publicUrl, 5)];
  const held = async (adminUrl: string) => (await debugPools(adminUrl)).reduce((n, p) => n + p.inflight + p.queueLength, 0);
  await waitFor('every request held', async () => (await held(a.adminUrl)) === 7 && (await held(b.adminUrl)) === 5);

  const rules = parseYaml(readFileSync('deploy/prometheus-adapter/rules.yaml', 'utf8')) as { externalRules: { name: { as: string }; metricsQuery: string }[] };
  const rule = rules.externalRules.find((r) => r.name.as === 'gateway_pool_demand');
  assert.ok(rule, 'the demand rule exists');
  const query = rule.metricsQuery.replaceAll('<<.LabelMatchers>>', 'pool="dialog",namespace="rasa"').replaceAll('<<.GroupBy>>', '');
  const samples = [
    ...scrape((await get(`${a.adminUrl}/metrics`)).text, { namespace: 'rasa', pod: 'rasa-gateway-a' }),
    ...scrape((await get(`${b.adminUrl}/metrics`)).text, { namespace: 'rasa', pod: 'rasa-gateway-b' }),
  ];
  const demand = evaluate(query, samples);
  // 2 pods x 2 slots per replica = 4 in flight each; a holds 3 queued, b 1.
  assert.equal(demand.get('dialog'), 12);
  const views = [...(await debugPools(a.adminUrl)), ...(await debugPools(b.adminUrl))];
  assert.equal(views.reduce((n, p) => n + p.inflight, 0), 8);
  assert.equal(views.reduce((n, p) => n + p.queueLength, 0), 4);
  aborts.abort();
  await Promise.all(pending);
});
