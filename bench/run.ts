/**
 * Benchmark entry: `npm run bench -- <scenario...|all> [--quick] [--repeats N] [--rows id,id]
 * [--out DIR] [--baseline DIR] [--no-install] [--plan]`. Plans every requested scenario first (finding or installing nginx,
 * HAProxy and wrk), prints the total time estimate, then runs them one after the other with a live
 * progress line, printing each table and writing bench/results/<scenario>.{json,md,png}.
 * A benchmark, not a test: it never fails on a number, only on a broken harness.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { baselineMain } from './lib/baseline.js';
import { defaultResultsDir, gatewayMain } from './lib/paths.js';
import { clock } from './lib/progress.js';
import type { BenchOptions, Prepared, Scenario } from './lib/scenario.js';
import { autoscale } from './scenarios/autoscale.js';
import { burst } from './scenarios/burst.js';
import { cache } from './scenarios/cache.js';
import { cluster } from './scenarios/cluster.js';
import { failover } from './scenarios/failover.js';
import { scaleFromZero } from './scenarios/scale-from-zero.js';
import { mixed } from './scenarios/mixed.js';
import { overhead } from './scenarios/overhead.js';
import { replicas } from './scenarios/replicas.js';
import { soak } from './scenarios/soak.js';
import { study } from './scenarios/study.js';
import { widgets } from './scenarios/widgets.js';

const scenarios: readonly Scenario[] = [burst, study, mixed, overhead, replicas, cache, soak, autoscale, widgets, cluster, failover, scaleFromZero];

const usage = `Usage: npm run bench -- <scenario...|all> [options]

Scenarios:
${scenarios.map((s) => `  ${s.name.padEnd(10)} ${s.title}`).join('\n')}

Options:
  --quick          A short version of each scenario (study: under two minutes).
  --repeats N      Repeats per cell (default: 3, or 1 with --quick; study: 1).
  --rows ID,ID     Only these row ids (ideal rows are always kept); ids are in the JSON output.
  --out DIR        Where results go (default bench/results).
  --baseline DIR   Another built checkout of this project: the burst scenarios (burst, study, mixed,
                   replicas) run every gateway row twice, on this build and on DIR/dist/src/main.js,
                   side by side, and add a "this build vs baseline" ratio table.
  --no-install     Do not apt-get install nginx, HAProxy or wrk when missing.
  --plan           Print the plan and the time estimate, run nothing.
  -h, --help       This help.
`;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      repeats: { type: 'string' },
      rows: { type: 'string' },
      out: { type: 'string' },
      baseline: { type: 'string' },
      'no-install': { type: 'boolean', default: false },
      plan: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(usage);
    return values.help ? 0 : 2;
  }
  const chosen = positionals.includes('all') ? [...scenarios] : positionals.map((name) => scenarios.find((s) => s.name === name));
  const unknown = positionals.filter((name, i) => name !== 'all' && !chosen[i]);
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario: ${unknown.join(', ')}\n\n${usage}`);
    return 2;
  }
  if (!existsSync(gatewayMain)) {
    process.stderr.write(`${gatewayMain} is missing: run \`npm run build\` first (npm run bench does)\n`);
    return 2;
  }
  const repeats = values.repeats === undefined ? undefined : Number(values.repeats);
  if (repeats !== undefined && (!Number.isInteger(repeats) || repeats < 1)) {
    process.stderr.write(`--repeats must be a positive integer (got ${values.repeats})\n`);
    return 2;
  }
  const options: BenchOptions = {
    quick: values.quick ?? false,
    ...(repeats !== undefined ? { repeats } : {}),
    ...(values.rows ? { rows: values.rows.split(',').map((r) => r.trim()) } : {}),
    install: !values['no-install'],
    outDir: values.out ? resolve(values.out) : defaultResultsDir,
    ...(values.baseline ? { baseline: resolve(values.baseline) } : {}),
  };
  try {
    if (options.baseline) baselineMain(options.baseline);
  } catch (err) {
    process.stderr.write(`--baseline: ${(err as Error).message}\n`);
    return 2;
  }
  const planned: { scenario: Scenario; prepared: Prepared }[] = [];
  let failed = 0;
  for (const scenario of chosen as Scenario[]) {
    try {
      planned.push({ scenario, prepared: await scenario.prepare(options, (line) => log(`[${scenario.name}] ${line}`)) });
    } catch (err) {
      failed++;
      log(`[${scenario.name}] cannot plan: ${(err as Error).stack ?? String(err)}`);
    }
  }
  const total = planned.reduce((s, p) => s + p.prepared.estimateS, 0);
  for (const { scenario, prepared } of planned) log(`[${scenario.name}] ${prepared.plan}: ~${clock(prepared.estimateS)}`);
  log(`Estimated total: ~${clock(total)}${options.quick ? ' (quick mode)' : ''}; results go to ${options.outDir}`);
  if (values.plan) return failed > 0 ? 1 : 0;
  const started = performance.now();
  for (const { scenario, prepared } of planned) {
    log(`\n== ${scenario.name}: ${scenario.title}`);
    try {
      await prepared.run();
    } catch (err) {
      failed++;
      log(`[${scenario.name}] failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
  log(`\nAll done in ${clock((performance.now() - started) / 1000)} (estimated ${clock(total)})${failed ? `; ${failed} scenario(s) failed` : ''}`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
