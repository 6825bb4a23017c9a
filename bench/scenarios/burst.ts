/**
 * `burst` (issue 2 item 10): 4 pods with 2 slots each, 3 at 300 ms and 1 weak at 900 ms; bursts of
 * 10, 50 and 100 requests spread over one second. Every balancer without slots (no queue: each
 * request goes straight to a pod) and with 2 slots per pod (the central queue), beside the greedy
 * central-queue schedule (the ideal) and the earliest-completion schedule, both simulated.
 * Rows that need a newer gateway (`dispatch: earliest-completion`, `slotsPerEndpoint: auto`) show as
 * n/a when the build does not accept them. Acceptance looked at: least-outstanding with slots within
 * 5 % of the ideal on p95 and max, and below half of round-robin without slots.
 */
import { latencyTable, matrixJson, measuredSection, strategyBars } from '../lib/matrix-report.js';
import { prepareBursts, type MatrixResult } from '../lib/matrix.js';
import { shape } from '../lib/pods.js';
import { markdownTable, ratio, sec, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { gatewayBalancers, row } from '../lib/targets.js';

const cluster = shape('4 pods: 3 fast + 1 weak', [
  { count: 3, slots: 2, serviceMs: 300, tag: 'fast' },
  { count: 1, slots: 2, serviceMs: 900, tag: 'weak' },
]);

const rows = [
  ...gatewayBalancers.map((b) => row.gateway(b, 'unlimited')),
  ...gatewayBalancers.map((b) => row.gateway(b, 2)),
  row.gateway('least-outstanding', 2, { pool: { dispatch: 'earliest-completion' } }),
  row.gateway('least-outstanding', 'auto'),
  row.idealGreedy(),
  row.idealEarliest(),
];

const CANDIDATE = 'gw-least-outstanding-2';
const BASELINE = 'gw-round-robin-unlimited';

function acceptance(result: MatrixResult, bursts: readonly number[]): { table: Table; checks: unknown[] } {
  const checks = bursts.map((b) => {
    const lo = result.summary(CANDIDATE, cluster.id, b);
    const ideal = result.summary('ideal', cluster.id, b);
    const rr = result.summary(BASELINE, cluster.id, b);
    const within = (v?: number, ref?: number) => v !== undefined && ref !== undefined && v <= ref * 1.05;
    const half = (v?: number, ref?: number) => v !== undefined && ref !== undefined && v < ref / 2;
    return {
      burst: b,
      p95VsIdeal: lo && ideal ? lo.p95 / ideal.p95 : null,
      maxVsIdeal: lo && ideal ? lo.max / ideal.max : null,
      within5pct: within(lo?.p95, ideal?.p95) && within(lo?.max, ideal?.max),
      p95VsRoundRobin: lo && rr ? lo.p95 / rr.p95 : null,
      maxVsRoundRobin: lo && rr ? lo.max / rr.max : null,
      belowHalfOfRoundRobin: half(lo?.p95, rr?.p95) && half(lo?.max, rr?.max),
      table: [
        String(b),
        ratio(lo?.p95, ideal?.p95),
        ratio(lo?.max, ideal?.max),
        within(lo?.p95, ideal?.p95) && within(lo?.max, ideal?.max) ? 'yes' : 'no',
        ratio(lo?.p95, rr?.p95),
        ratio(lo?.max, rr?.max),
        half(lo?.p95, rr?.p95) && half(lo?.max, rr?.max) ? 'yes' : 'no',
      ],
    };
  });
  return {
    table: {
      header: ['burst', 'p95/ideal', 'max/ideal', 'within 5 %', 'p95/rr', 'max/rr', 'below half of rr'],
      rows: checks.map((c) => c.table),
    },
    checks: checks.map(({ table: _t, ...c }) => c),
  };
}

const COMPLETION_AWARE = ['gw-least-outstanding-2-earliest-completion', 'gw-least-outstanding-auto'];

/** Issue 9: completion-aware dispatch against the earliest-completion and greedy schedules. */
function completionChecks(result: MatrixResult, bursts: readonly number[]): Table {
  const out: string[][] = [];
  for (const id of COMPLETION_AWARE) {
    const label = rows.find((r) => r.id === id)?.label ?? id;
    for (const b of bursts) {
      const c = result.get(id, cluster.id, b);
      const m = c?.status === 'ok' ? c.summary : undefined;
      const ec = result.summary('ideal-ec', cluster.id, b);
      const greedy = result.summary('ideal', cluster.id, b);
      out.push([
        label,
        String(b),
        m ? sec(m.p95) : (c?.status ?? '-'),
        sec(m?.max),
        ratio(m?.max, ec?.max),
        m && ec ? (m.max <= ec.max * 1.1 ? 'yes' : 'no') : '-',
        ratio(m?.max, greedy?.max),
      ]);
    }
  }
  return { header: ['row', 'burst', 'p95 s', 'max s', 'max/earliest-completion', 'within 10 %', 'max/greedy'], rows: out, align: ['l', 'r', 'r', 'r', 'r', 'r', 'r'] };
}

export const burst: Scenario = {
  name: 'burst',
  title: 'Burst: every balancer with and without the central queue, beside the ideal schedule',
  async prepare(options, log) {
    const { plan, prepared, summary } = prepareBursts('burst', cluster, rows, options, log);
    const bursts = plan.bursts;
    return {
      estimateS: prepared.estimateS,
      plan: summary,
      async run() {
        const result = await prepared.run();
        const table = latencyTable(result, prepared.rows, cluster, bursts);
        const acc = acceptance(result, bursts);
        const ec = completionChecks(result, bursts);
        const md = [
          '# Burst: balancers with and without the central queue',
          '',
          `Pods: ${cluster.label} (emulated, FIFO inside a pod). Bursts: n requests, request i sent at i/n s, each`,
          '`POST /webhooks/rest/webhook` with a new sender, timed to the full response, through one keep-alive',
          `client pool. Median over ${plan.repeats} repeat(s) of each statistic; percentiles nearest-rank. "no queue" is`,
          '`slotsPerEndpoint: unlimited`; "slots 2" is the central queue. ideal: the central FIFO where the head',
          'takes the first slot that frees (the fastest one among several free at arrival); earliest completion:',
          'the head goes to the slot that finishes it first, even if it must wait for it. Both simulated (DES).',
          '',
          ...measuredSection(benchCommand('burst', options), table, result, prepared.rows),
          '',
          `## Acceptance (issue 2): ${rows.find((r) => r.id === CANDIDATE)?.label} vs ideal and vs ${rows.find((r) => r.id === BASELINE)?.label}`,
          '',
          markdownTable(acc.table),
          '',
          '## Completion-aware dispatch (issue 9)',
          '',
          'Max latency against the earliest-completion schedule (within 10 %) and the greedy one (below it where the two differ,',
          'at 50 requests); at 10 requests issue 9 asks for p95 at most 0.35 s.',
          '',
          markdownTable(ec),
          '',
          '![p95 and max per strategy](burst.png)',
        ].join('\n');
        process.stdout.write(`\n${markdownTable(table)}\n\nAcceptance (least-outstanding, slots 2):\n${markdownTable(acc.table)}\n\nCompletion-aware dispatch:\n${markdownTable(ec)}\n`);
        const chart = strategyBars('burst', 'Burst: p95 (bars) and max (whiskers) per strategy', result, prepared.rows, cluster, bursts);
        const files = writeResults({ scenario: 'burst', outDir: options.outDir, json: matrixJson(plan, prepared, result, { acceptance: acc.checks }), markdown: md, charts: [chart] });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
