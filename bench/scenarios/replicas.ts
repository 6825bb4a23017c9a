/**
 * `replicas` (issue 6 item 4): 1 and 3 gateway processes in front of the same pods, the load
 * generator spreading requests across the replicas round-robin as a cloud LoadBalancer would. Each
 * replica runs its own central queue and counts only its own requests, so with 3 replicas a pod can
 * get 3x its slots; the rows show what that costs against the ideal single queue, and how adaptive
 * slots fare when each replica learns alone from latency that the others' requests also shape.
 */
import { latencyTable, matrixJson, measuredSection, strategyBars } from '../lib/matrix-report.js';
import { prepareBursts } from '../lib/matrix.js';
import { shape } from '../lib/pods.js';
import { markdownTable, writeResults } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { row } from '../lib/targets.js';

const cluster = shape('4 pods: 3 fast + 1 weak', [
  { count: 3, slots: 2, serviceMs: 300, tag: 'fast' },
  { count: 1, slots: 2, serviceMs: 900, tag: 'weak' },
]);

const rows = [
  row.gateway('least-outstanding', 2),
  row.gateway('least-outstanding', 2, { replicas: 3 }),
  row.gateway('least-outstanding', 1, { replicas: 3 }),
  row.gateway('least-outstanding', 2, { replicas: 3, pool: { dispatch: 'earliest-completion' } }),
  row.gateway('least-outstanding', 'auto'),
  row.gateway('least-outstanding', 'auto', { replicas: 3 }),
  row.gateway('least-outstanding', 'unlimited', { replicas: 3 }),
  row.gateway('round-robin', 'unlimited'),
  row.idealGreedy(),
  row.idealEarliest(),
];

export const replicas: Scenario = {
  name: 'replicas',
  title: '1 and 3 gateway replicas in front of the same pods, clients spread across them',
  async prepare(options, log) {
    const { plan, prepared, summary } = prepareBursts('replicas', cluster, rows, options, log);
    const bursts = plan.bursts;
    return {
      estimateS: prepared.estimateS,
      plan: summary,
      async run() {
        const result = await prepared.run();
        const table = latencyTable(result, prepared.rows, cluster, bursts);
        const md = [
          '# Gateway replicas',
          '',
          `Pods: ${cluster.label}. "x3": three gateway processes with the same config; request i goes to replica i mod 3`,
          '(a LoadBalancer spreading new clients). Each replica queues and counts only its own requests. Bursts as in',
          '`burst`; median over repeats; nearest-rank percentiles.',
          '',
          ...measuredSection(benchCommand('replicas', options), table, result, prepared.rows),
          '',
          '![replicas](replicas.png)',
        ].join('\n');
        process.stdout.write(`\n${markdownTable(table)}\n`);
        const chart = strategyBars('replicas', 'Gateway replicas: p95 (bars) and max (whiskers)', result, prepared.rows, cluster, bursts);
        const files = writeResults({ scenario: 'replicas', outDir: options.outDir, json: matrixJson(plan, prepared, result), markdown: md, charts: [chart] });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
