/**
 * `mixed` (issue 6 item 2, issue 9): pods of different capacities, 2-slot and 4-slot, normal and
 * weak, and nobody tells the proxy which. Static slot counts (gateway `slotsPerEndpoint` 1-4, HAProxy
 * `maxconn` 1-4: one number for every pod) against the ideal schedule computed with each pod's true
 * capacity, and `slotsPerEndpoint: auto` (n/a when the built gateway does not accept it). A second,
 * equal cluster (4-slot pods only) checks that learning costs little where one static number fits.
 */
import { latencyTable, matrixJson, measuredSection, strategyBars } from '../lib/matrix-report.js';
import { burstPlan, prepareMatrix, type MatrixResult } from '../lib/matrix.js';
import { shape, type Shape } from '../lib/pods.js';
import { markdownTable, ratio, sec, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { row, type Row } from '../lib/targets.js';

const cluster = shape('mixed: 2- and 4-slot pods, normal and weak', [
  { count: 1, slots: 4, serviceMs: 300, tag: 'big' },
  { count: 1, slots: 4, serviceMs: 900, tag: 'big-weak' },
  { count: 1, slots: 2, serviceMs: 300, tag: 'small' },
  { count: 1, slots: 2, serviceMs: 900, tag: 'small-weak' },
]);

const equal = shape('equal: four 4-slot pods', [{ count: 4, slots: 4, serviceMs: 300, tag: 'big' }]);

const AUTO = row.gateway('least-outstanding', 'auto');

/** On the equal cluster only what the comparison needs: auto, the static settings and the ideal. */
function measuredOn(s: Shape, r: Row): boolean {
  return s.id === cluster.id || r.id.startsWith(AUTO.id) || /^(gw-least-outstanding|haproxy-leastconn)-\d+$/.test(r.id);
}

function rowsFor(quick: boolean): Row[] {
  const statics = quick ? [2, 4] : [1, 2, 3, 4];
  return [
    ...statics.map((k) => row.gateway('least-outstanding', k)),
    ...(quick ? [] : [row.gateway('least-outstanding', 'unlimited'), row.gateway('peak-ewma', 2)]),
    ...statics.map((k) => row.haproxy(k)),
    ...(quick ? [] : [row.nginx()]),
    row.idealGreedy(),
    row.idealEarliest(),
  ];
}

/** Per burst: the best of each family of static rows, and `auto` against it. */
function bestStatic(result: MatrixResult, rows: readonly Row[], cluster: Shape, bursts: readonly number[]): Table {
  const family = (prefix: string) => rows.filter((r) => r.id.startsWith(prefix) && /-\d+$/.test(r.id));
  const best = (fam: readonly Row[], b: number) =>
    fam
      .map((r) => ({ r, m: result.summary(r.id, cluster.id, b) }))
      .filter((x) => x.m)
      .sort((x, y) => (x.m?.p95 ?? 0) - (y.m?.p95 ?? 0))[0];
  return {
    header: ['burst', 'ideal p95 s', 'best gateway static', 'p95 s', 'best haproxy maxconn', 'p95 s', 'auto p95 s', 'auto/ideal', 'auto/best static', 'auto/best haproxy', 'auto cold p95 s'],
    rows: bursts.map((b) => {
      const ideal = result.summary('ideal', cluster.id, b);
      const g = best(family('gw-least-outstanding-'), b);
      const h = best(family('haproxy-leastconn-'), b);
      const auto = result.summary(AUTO.id, cluster.id, b);
      const cold = result.summary(row.cold(AUTO).id, cluster.id, b);
      return [String(b), sec(ideal?.p95), g?.r.label ?? '-', sec(g?.m?.p95), h?.r.label ?? '-', sec(h?.m?.p95), sec(auto?.p95), ratio(auto?.p95, ideal?.p95), ratio(auto?.p95, g?.m?.p95), ratio(auto?.p95, h?.m?.p95), sec(cold?.p95)];
    }),
  };
}

export const mixed: Scenario = {
  name: 'mixed',
  title: 'Pods of different capacities: static slots and HAProxy maxconn vs the ideal',
  async prepare(options, log) {
    const rows = [AUTO, ...(options.quick ? [] : [row.cold(AUTO)]), ...rowsFor(options.quick)];
    const plan = { ...burstPlan('mixed', cluster, rows, options), shapes: [cluster, equal], measures: measuredOn };
    const bursts = plan.bursts;
    const prepared = prepareMatrix(plan, options, log);
    const describe = (c: Shape) => c.pods.map((p) => `${p.slots}x${p.serviceMs}ms`).join(' ');
    return {
      estimateS: prepared.estimateS,
      plan: `${describe(cluster)}, and ${describe(equal)}; bursts ${bursts.join(', ')}; ${prepared.rows.length} rows; ${plan.repeats} repeat(s)`,
      async run() {
        const result = await prepared.run();
        const onEqual = prepared.rows.filter((r) => r.target.kind === 'ideal' || measuredOn(equal, r));
        const table = latencyTable(result, prepared.rows, cluster, bursts);
        const best = bestStatic(result, prepared.rows, cluster, bursts);
        const equalTable = latencyTable(result, onEqual, equal, bursts);
        const equalBest = bestStatic(result, onEqual, equal, bursts);
        const md = [
          '# Mixed pod capacities',
          '',
          `Pods: ${cluster.pods.map((p) => `${p.name} ${p.slots} slots x ${p.serviceMs} ms`).join('; ')}. The proxies are not told`,
          'which pod is which: gateway `slotsPerEndpoint` and HAProxy `maxconn` are one number for every pod. The ideal',
          "schedules use each pod's true slots. Bursts as in `burst`; median over repeats; nearest-rank percentiles.",
          prepared.unavailable.has(AUTO.id) ? `\n\`slotsPerEndpoint: auto\`: n/a (${prepared.unavailable.get(AUTO.id)}).\n` : '',
          ...measuredSection(benchCommand('mixed', options), table, result, prepared.rows),
          '',
          '## Best single static setting per burst',
          '',
          markdownTable(best),
          '',
          '![mixed](mixed.png)',
          '',
          `## Equal pods: ${equal.pods.length} x ${equal.pods[0]?.slots} slots x ${equal.pods[0]?.serviceMs} ms`,
          '',
          'Where one static number fits every pod, what does learning it cost? Same method, rows limited to `auto` and the static settings.',
          '',
          markdownTable(equalTable),
          '',
          markdownTable(equalBest),
          '',
          '![mixed, equal pods](mixed-equal.png)',
        ].join('\n');
        process.stdout.write(`\n${markdownTable(table)}\n\n${markdownTable(best)}\n\nEqual pods:\n${markdownTable(equalTable)}\n\n${markdownTable(equalBest)}\n`);
        const subtitle = (c: Shape) => c.pods.map((p) => `${p.slots} slots x ${p.serviceMs} ms`).join(', ');
        const charts = [
          strategyBars('mixed', 'Mixed capacities: p95 (bars) and max (whiskers)', result, prepared.rows, cluster, bursts, subtitle(cluster)),
          strategyBars('mixed-equal', 'Equal pods: p95 (bars) and max (whiskers)', result, onEqual, equal, bursts, subtitle(equal)),
        ];
        const files = writeResults({ scenario: 'mixed', outDir: options.outDir, json: matrixJson(plan, prepared, result), markdown: md, charts });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
