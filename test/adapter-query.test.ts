/**
 * The autoscaling queries the project ships, evaluated by a real Prometheus scraping real gateway
 * processes: every prometheus-adapter rule of deploy/prometheus-adapter/rules.yaml, found, named and
 * filled in as the adapter does it for an external metric, and every Prometheus trigger of the KEDA
 * ScaledObjects the chart renders. Two gateway replicas in namespace "rasa" (plus one of another
 * installation in namespace "other", which the queries must leave out) front emulated Rasa pods; pods
 * that hang keep in-flight and queued requests in place while Prometheus scrapes. What an HPA needs is
 * asserted: one finite value per pool, summed over the replicas of its namespace, zero when idle.
 * Rules are read generically, so a rule added later is evaluated too, and fails here if it reads a
 * metric no gateway exports.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { parse as parseYaml, parseAllDocuments, stringify as yaml } from 'yaml';
import { freePort } from '../bench/lib/procs.js';
import type { RasaPod } from '../src/emulator/rasa-pod.js';
import { debugPools, Harness, post, settled, waitFor } from './helpers/harness.js';
import { tools } from './helpers/kube-tools.js';
import { startGateway, writeConfig, type Started } from './helpers/process.js';
import { Prometheus, type Sample } from './helpers/prometheus.js';

const NAMESPACE = 'rasa';
const POOLS = ['nlu', 'dialog'] as const;
type PoolName = (typeof POOLS)[number];
/** Gateway slots per replica: nlu 2 pods x 2, dialog 1 pod x 3. */
const SLOTS: Record<PoolName, number> = { nlu: 4, dialog: 3 };

interface Replica {
  readonly pod: string;
  readonly namespace: string;
  /** Requests this replica holds in the held-load test: nlu queues on both rasa replicas, dialog never. */
  readonly held: Record<PoolName, number>;
}
const REPLICAS: readonly Replica[] = [
  { pod: 'rasa-gateway-7d4f9-a', namespace: NAMESPACE, held: { nlu: 7, dialog: 2 } },
  { pod: 'rasa-gateway-7d4f9-b', namespace: NAMESPACE, held: { nlu: 5, dialog: 3 } },
  { pod: 'rasa-gateway-other-0', namespace: 'other', held: { nlu: 3, dialog: 1 } },
];

const h = new Harness();
const gateways = new Map<Replica, Started>();
const pods: RasaPod[] = [];
let prom: Prometheus | undefined;
const held = new AbortController();

function prometheus(): Prometheus {
  assert.ok(prom, 'Prometheus started');
  return prom;
}

function gateway(r: Replica): Started {
  const gw = gateways.get(r);
  assert.ok(gw, `gateway ${r.pod} started`);
  return gw;
}

const killGateways = (): void => {
  for (const gw of gateways.values()) gw.child.kill('SIGKILL');
};

before(async () => {
  process.once('exit', killGateways);
  const nlu = await h.podSet(2, { name: 'nlu', slots: 16, serviceTimeMs: 150 });
  const dialog = await h.podSet(1, { name: 'dialog', slots: 16, serviceTimeMs: 150 });
  pods.push(...nlu, ...dialog);
  const queue = { maxLength: 100, maxWaitMs: 60_000 };
  // The held-load test ends by cutting the pods' connections: that is not the pods failing.
  const ejection = { consecutiveFailures: 0 };
  const file = writeConfig(
    yaml({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
      pools: {
        nlu: { endpoints: nlu.map((p) => p.url), slotsPerEndpoint: 2, upstreamTimeoutMs: 60_000, queue, ejection },
        dialog: { endpoints: dialog.map((p) => p.url), slotsPerEndpoint: 3, upstreamTimeoutMs: 60_000, queue, ejection },
      },
      routes: [
        { path: '/model/parse', pool: 'nlu' },
        { prefix: '/', pool: 'dialog' },
      ],
    }),
  );
  // Prometheus takes a few seconds to its first scrape: it starts beside the gateways, on their
  // admin ports chosen beforehand.
  const adminPorts = await Promise.all(REPLICAS.map(() => freePort()));
  const targets = REPLICAS.map((r, i) => ({ url: `http://127.0.0.1:${adminPorts[i]}`, labels: { namespace: r.namespace, pod: r.pod } }));
  const started = await Promise.allSettled([
    Prometheus.start(targets).then((p) => (prom = p)),
    ...REPLICAS.map(async (r, i) => gateways.set(r, await startGateway(['--config', file, '--admin-port', String(adminPorts[i])]))),
  ]);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
});

after(async () => {
  held.abort();
  await prom?.stop();
  killGateways();
  await Promise.all([...gateways.values()].map((gw) => gw.exited));
  process.removeListener('exit', killGateways);
  await h.stopAll();
});

// --- prometheus-adapter, as it serves external metrics ------------------------------------------

interface AdapterRule {
  seriesQuery: string;
  metricsQuery: string;
  seriesFilters?: { is?: string; isNot?: string }[];
  resources?: { overrides?: Record<string, { resource: string }> };
  name?: { matches?: string; as?: string };
}

/** An external metric the adapter lists: its name, the rule and the Prometheus series it came from. */
interface ExternalMetric {
  readonly name: string;
  readonly rule: AdapterRule;
  readonly series: string;
}

function adapterRules(): AdapterRule[] {
  const doc = parseYaml(readFileSync('deploy/prometheus-adapter/rules.yaml', 'utf8')) as { externalRules?: AdapterRule[] };
  assert.ok(doc.externalRules && doc.externalRules.length > 0, 'rules.yaml has externalRules');
  return doc.externalRules;
}

/** `name.as` expanded against `name.matches` (Go regexp $n / ${n}; the adapter's defaults when absent). */
function externalName(rule: AdapterRule, series: string): string {
  const m = new RegExp(rule.name?.matches || '.*').exec(series);
  assert.ok(m, `${series} matches ${rule.name?.matches}`);
  const as = rule.name?.as || (m.length === 1 ? '$0' : '$1');
  return as.replace(/\$\{?(\d+)\}?/g, (_, i: string) => m[Number(i)] ?? '');
}

/**
 * The adapter's metric lister for one rule: the series its seriesQuery matches, filtered by
 * seriesFilters and name.matches, named by name.as. Fails when the rule finds nothing to serve or
 * misses a replica of the namespace.
 */
async function discover(rule: AdapterRule): Promise<ExternalMetric[]> {
  const found = await prometheus().series(rule.seriesQuery);
  const filters = [...(rule.seriesFilters ?? []), ...(rule.name?.matches ? [{ is: rule.name.matches }] : [])];
  const kept = found.filter((labels) => {
    const name = labels.__name__ ?? '';
    return filters.every((f) => (f.is === undefined || new RegExp(f.is).test(name)) && (f.isNot === undefined || !new RegExp(f.isNot).test(name)));
  });
  const exported = (await prometheus().metricNames()).filter((n) => n.startsWith('gateway_'));
  assert.ok(kept.length > 0, `adapter rule ${rule.name?.as ?? rule.seriesQuery}: its seriesQuery ${rule.seriesQuery} matches no series the gateway replicas export (they export ${exported.join(', ')})`);
  const replicas = new Set(kept.filter((l) => l.namespace === NAMESPACE).map((l) => l.pod));
  assert.deepEqual([...replicas].sort(), REPLICAS.filter((r) => r.namespace === NAMESPACE).map((r) => r.pod).sort(), `${rule.seriesQuery} sees every replica in ${NAMESPACE}`);
  const byName = new Map<string, ExternalMetric>();
  for (const labels of kept) {
    const series = labels.__name__ ?? '';
    byName.set(externalName(rule, series), { name: externalName(rule, series), rule, series });
  }
  return [...byName.values()];
}

/**
 * The adapter's BuildExternal: <<.LabelMatchers>> is the HPA's selector (sorted by label) followed by
 * the namespace label of the rule's overrides set to the HPA's namespace, <<.Series>> the series name,
 * <<.GroupBy>> empty (external metrics have no resource to group by).
 */
function externalQuery(metric: ExternalMetric, selector: Record<string, string>, namespace: string): string {
  const nsLabel = Object.entries(metric.rule.resources?.overrides ?? {}).find(([, r]) => r.resource === 'namespace')?.[0];
  assert.ok(nsLabel, `rule ${metric.name} maps a label to the namespace resource, or the adapter cannot scope it to the HPA's namespace`);
  const matchers = [...Object.keys(selector).sort().map((k) => `${k}=${JSON.stringify(selector[k])}`), `${nsLabel}=${JSON.stringify(namespace)}`];
  const query = metric.rule.metricsQuery.replaceAll('<<.Series>>', metric.series).replaceAll('<<.LabelMatchers>>', matchers.join(',')).replaceAll('<<.GroupBy>>', '');
  assert.doesNotMatch(query, /<<|>>/, `rule ${metric.name}: a template field this test does not fill in`);
  return query;
}

// --- the chart: HPAs and KEDA ScaledObjects -------------------------------------------------------

interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

function renderChart(sets: string[]): K8sObject[] {
  const { helm, env } = tools();
  const args = ['template', 'rasa-gateway', 'deploy/helm/rasa-gateway', '--namespace', NAMESPACE, '--kube-version', '1.29.0', ...sets.flatMap((s) => ['--set', s])];
  const text = execFileSync(helm, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter((d) => d !== null);
}

/** What the chart's HPAs ask the adapter for: external metric names with their selectors. */
function hpaMetrics(): { hpa: string; name: string; selector: Record<string, string> }[] {
  const hpas = renderChart(['autoscaling.enabled=true', 'autoscaling.queueWait.enabled=true']).filter((d) => d.kind === 'HorizontalPodAutoscaler');
  assert.ok(hpas.length > 0, 'the chart renders HPAs');
  return hpas.flatMap((hpa) =>
    (hpa.spec.metrics as { type: string; external?: { metric: { name: string; selector?: { matchLabels?: Record<string, string> } } } }[])
      .filter((m) => m.type === 'External')
      .map((m) => ({ hpa: hpa.metadata.name, name: m.external!.metric.name, selector: m.external!.metric.selector?.matchLabels ?? {} })),
  );
}

interface Trigger {
  readonly name: string;
  readonly pool: string;
  readonly query: string;
}

/** Every prometheus trigger of the ScaledObjects the chart renders with `sets`. */
function kedaTriggers(sets: string[]): Trigger[] {
  // Both signals the chart offers: desired pods (the default) and demand.
  const objects = [[], ['autoscaling.signal=demand']]
    .flatMap((signal) => renderChart(['keda.enabled=true', 'autoscaling.queueWait.enabled=true', ...signal, ...sets]))
    .filter((d) => d.kind === 'ScaledObject');
  assert.ok(objects.length > 0, 'the chart renders ScaledObjects');
  return objects.flatMap((so) => {
    const pool = so.metadata.labels?.['rasa-gateway/pool'];
    assert.ok(pool, `ScaledObject ${so.metadata.name} names its pool`);
    return (so.spec.triggers as { type: string; name?: string; metadata: { query: string } }[])
      .filter((t) => t.type === 'prometheus')
      .map((t) => ({ name: t.name ?? t.metadata.query, pool, query: t.metadata.query }));
  });
}

// --- evaluating everything at one instant ---------------------------------------------------------

/** Metric (or trigger) name -> pool -> value. */
type Values = Map<string, Map<string, number>>;

function put(values: Values, name: string, pool: string, value: number): void {
  if (!values.has(name)) values.set(name, new Map());
  values.get(name)!.set(pool, value);
}

function valueFor(values: Values, name: string, pool: string): number {
  const v = values.get(name)?.get(pool);
  assert.ok(v !== undefined, `${name} was evaluated for pool ${pool} (have ${[...values.keys()].join(', ')})`);
  return v;
}

/** The one sample an HPA (or KEDA) would read; it must be finite, non-negative and not another pool's. */
function single(samples: Sample[], pool: string, what: string): number {
  assert.equal(samples.length, 1, `${what}: exactly one series, got ${JSON.stringify(samples)}`);
  const [s] = samples as [Sample];
  assert.ok(s.labels.pool === undefined || s.labels.pool === pool, `${what}: labelled pool="${pool}", got ${JSON.stringify(s.labels)}`);
  assert.ok(Number.isFinite(s.value) && s.value >= 0, `${what}: a finite value >= 0, got ${s.value}`);
  return s.value;
}

/** Names every gateway metric a query reads (`name{...}` selectors); each must be exported. */
function assertReadsExported(query: string, exported: Set<string>, what: string): void {
  for (const [, name] of query.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)) {
    assert.ok(exported.has(name!), `${what} reads ${name}, which no gateway replica exports`);
  }
}

/**
 * Every adapter rule's external metrics for every pool in namespace rasa, and every KEDA trigger of
 * the given renders, all evaluated at `at`, after a scrape that started once the state was in place.
 */
async function evaluateAll(keda: { label: string; sets: string[] }[]): Promise<{ adapter: Values; keda: Map<string, Values> }> {
  const p = prometheus();
  await p.waitForScrape(Date.now());
  const at = Date.now();
  const exported = new Set(await p.metricNames());
  const adapter: Values = new Map();
  for (const rule of adapterRules()) {
    for (const metric of await discover(rule)) {
      for (const pool of POOLS) {
        const query = externalQuery(metric, { pool }, NAMESPACE);
        assertReadsExported(query, exported, `adapter rule ${metric.name}`);
        put(adapter, metric.name, pool, single(await p.query(query, at), pool, `${metric.name}{pool="${pool}"} = ${query}`));
      }
    }
  }
  const triggers = new Map<string, Values>();
  for (const { label, sets } of keda) {
    const values: Values = new Map();
    for (const t of kedaTriggers(sets)) {
      assertReadsExported(t.query, exported, `KEDA trigger ${t.name}`);
      put(values, t.name, t.pool, single(await p.query(t.query, at), t.pool, `KEDA trigger ${t.name} of pool ${t.pool} (${label}) = ${t.query}`));
    }
    triggers.set(label, values);
  }
  return { adapter, keda: triggers };
}

/** The chart with `keda.extraLabelMatchers` scoping it to one namespace, and with the defaults. */
const KEDA_RENDERS = [
  { label: 'namespace-scoped', sets: [`keda.extraLabelMatchers=namespace="${NAMESPACE}"`] },
  { label: 'defaults', sets: [] },
];

const DEMAND = 'gateway_pool_demand';
const QUEUE_WAIT = 'gateway_pool_queue_wait_p95_seconds';

// --- load -------------------------------------------------------------------------------------------

/** `n` requests to `pool` through replica `r`; resolves to each one's status (0 when aborted). */
function send(r: Replica, pool: PoolName, n: number, signal?: AbortSignal): Promise<number>[] {
  const base = gateway(r).publicUrl;
  return Array.from({ length: n }, (_, i) => {
    const sent =
      pool === 'nlu'
        ? post(`${base}/model/parse`, { text: `q${i}` }, signal ? { signal } : {})
        : post(`${base}/webhooks/rest/webhook`, { sender: `${r.pod}-${i}`, message: 'hi' }, signal ? { signal } : {});
    return sent.then(
      (res) => res.status,
      () => 0,
    );
  });
}

/** Requests in flight + queued per pool, summed over the replicas of `namespace`, as they report it. */
async function heldBy(namespace: string | undefined): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of REPLICAS.filter((x) => namespace === undefined || x.namespace === namespace)) {
    for (const p of await debugPools(gateway(r).adminUrl)) out[p.name] = (out[p.name] ?? 0) + p.inflight + p.queueLength;
  }
  return out;
}

// --- tests ----------------------------------------------------------------------------------------------

test('idle: every adapter rule and KEDA trigger answers one series per pool, demand and queue wait 0; the HPAs ask only for served metrics', async () => {
  const { adapter, keda } = await evaluateAll(KEDA_RENDERS);
  for (const pool of POOLS) {
    assert.equal(valueFor(adapter, DEMAND, pool), 0, `${DEMAND}{pool="${pool}"} idle`);
    assert.equal(valueFor(adapter, QUEUE_WAIT, pool), 0, `${QUEUE_WAIT}{pool="${pool}"} idle`);
    for (const [label, values] of keda) {
      assert.equal(valueFor(values, 'demand', pool), 0, `KEDA demand (${label}) of ${pool} idle`);
      assert.equal(valueFor(values, 'queue-wait-p95', pool), 0, `KEDA queue-wait-p95 (${label}) of ${pool} idle`);
    }
  }
  for (const m of hpaMetrics()) {
    assert.ok(adapter.has(m.name), `HPA ${m.hpa} asks for ${m.name}, which no adapter rule serves (served: ${[...adapter.keys()].join(', ')})`);
    assert.deepEqual(Object.keys(m.selector), ['pool'], `HPA ${m.hpa} selects ${m.name} by pool`);
    assert.ok(POOLS.includes(m.selector.pool as PoolName), `HPA ${m.hpa}: pool ${m.selector.pool} is one this test serves`);
  }
});

test('held load: demand = in flight + queued of the pool summed over both replicas of the namespace, the same for the adapter and KEDA', async () => {
  for (const p of pods) p.mode = 'hang';
  const requests = REPLICAS.flatMap((r) => POOLS.flatMap((pool) => send(r, pool, r.held[pool], held.signal)));
  await waitFor('every replica holds its requests', async () => {
    for (const r of REPLICAS) {
      for (const view of await debugPools(gateway(r).adminUrl)) {
        const n = r.held[view.name as PoolName];
        if (view.inflight !== Math.min(n, SLOTS[view.name as PoolName]) || view.queueLength !== n - Math.min(n, SLOTS[view.name as PoolName])) return false;
      }
    }
    return true;
  });
  const inNamespace = await heldBy(NAMESPACE);
  const everywhere = await heldBy(undefined);
  // a: 4 in flight + 3 queued, b: 4 + 1 on nlu; 2 and 3 in flight on dialog. The other namespace: 3 and 1.
  assert.deepEqual(inNamespace, { nlu: 12, dialog: 5 });
  assert.deepEqual(everywhere, { nlu: 15, dialog: 6 });

  const { adapter, keda } = await evaluateAll(KEDA_RENDERS);
  for (const pool of POOLS) {
    assert.equal(valueFor(adapter, DEMAND, pool), inNamespace[pool], `${DEMAND}{pool="${pool}"}: both replicas of ${NAMESPACE}, nothing from elsewhere`);
    assert.equal(valueFor(keda.get('namespace-scoped')!, 'demand', pool), inNamespace[pool], `KEDA demand of ${pool} with extraLabelMatchers`);
    // Documented in the chart's values: without extraLabelMatchers KEDA counts every gateway Prometheus scrapes.
    assert.equal(valueFor(keda.get('defaults')!, 'demand', pool), everywhere[pool], `KEDA demand of ${pool} with the chart's defaults`);
  }
  assert.deepEqual(await heldBy(NAMESPACE), inNamespace, 'the load did not move while Prometheus scraped');

  // Clients leave; a pod keeps its slot until it answers, so the hung pods drop their connections.
  held.abort();
  await Promise.all(requests);
  for (const p of pods) p.server.closeAllConnections();
  for (const r of REPLICAS) await settled(gateway(r).adminUrl);
  const idle = await evaluateAll(KEDA_RENDERS);
  for (const pool of POOLS) {
    assert.equal(valueFor(idle.adapter, DEMAND, pool), 0, `${DEMAND}{pool="${pool}"} back to 0`);
    for (const [label, values] of idle.keda) assert.equal(valueFor(values, 'demand', pool), 0, `KEDA demand (${label}) of ${pool} back to 0`);
  }
});

test("queue wait p95: each pool's own, highest where requests queued on both replicas; KEDA agrees", async () => {
  for (const p of pods) p.mode = 'ok';
  // 12 parses per replica on 4 slots: 8 wait behind 150 ms parses. 2 webhooks on 3 slots find one free.
  const statuses = await Promise.all(REPLICAS.filter((r) => r.namespace === NAMESPACE).flatMap((r) => [...send(r, 'nlu', 12), ...send(r, 'dialog', 2)]));
  assert.deepEqual(new Set(statuses), new Set([200]));
  const { adapter, keda } = await evaluateAll(KEDA_RENDERS.slice(0, 1));
  const scoped = keda.get('namespace-scoped')!;
  const nlu = valueFor(adapter, QUEUE_WAIT, 'nlu');
  assert.ok(nlu > 0, `${QUEUE_WAIT}{pool="nlu"} > 0`);
  assert.ok(valueFor(adapter, QUEUE_WAIT, 'dialog') < nlu, `${QUEUE_WAIT}{pool="dialog"} is dialog's own (its requests found free slots), below nlu's ${nlu}`);
  for (const pool of POOLS) {
    assert.equal(valueFor(scoped, 'queue-wait-p95', pool), valueFor(adapter, QUEUE_WAIT, pool), `KEDA queue-wait-p95 of ${pool} = the adapter's`);
    assert.equal(valueFor(adapter, DEMAND, pool), 0, `${DEMAND}{pool="${pool}"}: every request was answered`);
  }
});
