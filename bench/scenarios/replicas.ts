/**
 * `replicas` (issue 6 item 4, issue 17): 1, 2 and 3 gateway processes in front of the same pods, the
 * load generator spreading requests across the replicas round-robin as a cloud LoadBalancer would,
 * with the cluster off (each replica queues and counts only its own requests, so with n replicas a
 * pod can get n x its slots) and on (the replicas joined by `cluster` with static peers; a row starts
 * once every replica has quorum and names the same scheduler for every pool), static slots and
 * `auto`, beside the ideal single queue. Cells: the burst scenario's pods, and the study's weak-pod
 * clusters with 1 and 3 replicas. Per row: p95 and max against one replica with the cluster off in
 * the same run (issue 17: within 5 %), and the most requests each emulated pod held at once, flagged
 * where a pod was given more than its slots.
 */
import { latencyTable, matrixJson, measuredSection, podPeakTable, strategyBars } from '../lib/matrix-report.js';
import { burstPlan, prepareMatrix, type MatrixResult } from '../lib/matrix.js';
import { shape, type Shape } from '../lib/pods.js';
import { markdownTable, ratio, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { row, type Row, type Slots } from '../lib/targets.js';
import { studyShapes } from './study.js';

const cluster = shape('4 pods: 3 fast + 1 weak', [
  { count: 3, slots: 2, serviceMs: 300, tag: 'fast' },
  { count: 1, slots: 2, serviceMs: 900, tag: 'weak' },
]);

interface Variant {
  readonly replicas: number;
  readonly cluster: boolean;
  readonly slots: Slots;
}

/** Static slots use the gateway's default dispatch (completion-aware), named so the row says so. */
function gatewayRow(v: Variant): Row {
  const pool = typeof v.slots === 'number' ? { dispatch: 'earliest-completion' } : undefined;
  return row.gateway('least-outstanding', v.slots, { replicas: v.replicas, cluster: v.cluster, ...(pool ? { pool } : {}) });
}

const SLOTS: readonly Slots[] = [2, 'auto'];
const variants: Variant[] = [1, 2, 3].flatMap((replicas) => [false, true].flatMap((on) => SLOTS.map((slots) => ({ replicas, cluster: on, slots }))));
/** On the study's weak-pod clusters: one replica (the reference) and three, cluster off and on. */
const onWeak = (v: Variant) => (v.replicas === 1 && !v.cluster) || v.replicas === 3;

const byId = new Map(variants.map((v) => [gatewayRow(v).id, v]));
/** The row a variant is compared with: one replica, cluster off, same slots. */
const referenceOf = (v: Variant) => gatewayRow({ replicas: 1, cluster: false, slots: v.slots });

const rows: Row[] = [
  ...variants.map(gatewayRow),
  row.gateway('least-outstanding', 'unlimited', { replicas: 3 }),
  row.idealGreedy(),
  row.idealEarliest(),
];

function measuredOn(s: Shape, r: Row): boolean {
  if (s.id === cluster.id) return true;
  const v = byId.get(r.id);
  return v !== undefined && onWeak(v);
}

/** Per shape and burst, each multi-replica row's p95 and max over one replica's (cluster off, same slots). */
function versusOne(result: MatrixResult, measured: readonly Row[], shapes: readonly Shape[], bursts: readonly number[]): Table {
  const out: string[][] = [];
  for (const s of shapes) {
    for (const b of bursts) {
      for (const r of measured) {
        const v = byId.get(r.id);
        if (!v || v.replicas === 1 || !measuredOn(s, r)) continue;
        const m = result.summary(r.id, s.id, b);
        const one = result.summary(referenceOf(v).id, s.id, b);
        const within = m && one ? (m.p95 <= one.p95 * 1.05 && m.max <= one.max * 1.05 ? 'yes' : 'no') : '-';
        out.push([s.id, String(b), r.label, ratio(m?.p95, one?.p95), ratio(m?.max, one?.max), within]);
      }
    }
  }
  return { header: ['shape', 'burst', 'row', 'p95 / 1 replica', 'max / 1 replica', 'within 5 %'], rows: out, align: ['l', 'r', 'l', 'r', 'r', 'l'] };
}

export const replicas: Scenario = {
  name: 'replicas',
  title: '1, 2 and 3 gateway replicas, cluster off and on, in front of the same pods, clients spread across them',
  async prepare(options, log) {
    const weak = studyShapes([], options.quick ? [4] : [2, 4, 10]);
    const shapes = [cluster, ...weak];
    const plan = { ...burstPlan('replicas', cluster, rows, options), shapes, measures: measuredOn };
    const bursts = plan.bursts;
    const prepared = prepareMatrix(plan, options, log);
    return {
      estimateS: prepared.estimateS,
      plan: `${shapes.map((s) => s.id).join(', ')}; bursts ${bursts.join(', ')}; ${prepared.rows.length} rows; ${plan.repeats} repeat(s)`,
      async run() {
        const result = await prepared.run();
        const tables = shapes.map((s) => ({ s, table: latencyTable(result, prepared.rows.filter((r) => r.target.kind === 'ideal' || measuredOn(s, r)), s, bursts) }));
        const vs = versusOne(result, prepared.rows, shapes, bursts);
        const peaks = podPeakTable(result, prepared.rows, shapes);
        const [first, ...others] = tables;
        const md = [
          '# Gateway replicas',
          '',
          `Pods: ${cluster.label}; and the study's weak-pod clusters (${weak.map((s) => s.label).join('; ')}) with 1 and 3 replicas.`,
          '"xN": N gateway processes; request i goes to replica i mod N (a LoadBalancer spreading new clients). Without',
          '"cluster" each replica queues and counts only its own requests; "cluster": the replicas are joined by `cluster`',
          '(static peers on loopback) and a row starts once every replica answers `quorum: true` on `/debug/cluster` and names',
          'the same scheduler for every pool. Static slots use the default completion-aware dispatch. Bursts as in `burst`;',
          `median over ${plan.repeats} repeat(s); nearest-rank percentiles. One 2-core machine carries the pods, the load generator and`,
          'every replica: compare rows of one run only.',
          '',
          ...(first ? measuredSection(benchCommand('replicas', options), first.table, result, prepared.rows) : []),
          '',
          ...others.flatMap(({ s, table }) => [`## ${s.id}: ${s.label}`, '', markdownTable(table), '']),
          '## Against one replica (issue 17: p95 and max within 5 % at 50 and 100 requests)',
          '',
          markdownTable(vs),
          '',
          '## Peak load per pod',
          '',
          'The most requests each emulated pod held at once (running plus waiting inside it) over the row\'s runs, warm-up and',
          'priming included, against its slots. `auto` rows probe above a pod\'s slots on purpose while learning them.',
          '',
          markdownTable(peaks),
          '',
          '![replicas](replicas.png)',
        ].join('\n');
        process.stdout.write(`\n${tables.map((t) => `${t.s.id}:\n${markdownTable(t.table)}`).join('\n\n')}\n\n${markdownTable(vs)}\n\n${markdownTable(peaks)}\n`);
        const chart = strategyBars('replicas', 'Gateway replicas: p95 (bars) and max (whiskers)', result, prepared.rows, cluster, bursts);
        const files = writeResults({ scenario: 'replicas', outDir: options.outDir, json: matrixJson(plan, prepared, result), markdown: md, charts: [chart] });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
