/**
 * `rasa-gateway plan`: capacity planning from the command line, before the traffic comes. The pod
 * profile is given as flags (default: the study's pod, 2 slots x 500 ms) or read from a running
 * gateway's `GET /debug/capacity` (`--from http://admin:9090`), which reports what that gateway
 * measured per pool; plan.ts does the arithmetic. main.ts dispatches here before any gateway starts.
 * Exit status 2 on bad arguments, 1 when the gateway cannot be read.
 */
import { parseArgs } from 'node:util';
import { plan, renderPlan, type Plan, type PlanInput } from './plan.js';
import type { CapacityReport } from './report.js';
import { STUDY_PODS, STUDY_PROFILE, STUDY_RATES } from './study.js';

export const planUsage = `Usage: rasa-gateway plan [profile] [options]

Pods needed and the p95 latency to expect, per arrival rate, from a queueing model (M/G/c).

Profile (default: the study's pod, ${STUDY_PROFILE.slots} slots x ${STUDY_PROFILE.serviceMs} ms):
  --service-ms MS      Mean time a pod takes per request.
  --cv X               Coefficient of variation of that time (default 0: constant).
  --slots N            Requests a pod runs at once (default ${STUDY_PROFILE.slots}).
  --from URL           Instead: a running gateway's admin URL; reads GET /debug/capacity (measured per pool).
  --pool NAME          With --from: only this pool.
Options:
  --rates LIST         Arrival rates in req/s, comma-separated (default ${STUDY_RATES.join(',')}; with --from: the measured rate too).
  --pods LIST          Pod counts of the latency table (default ${STUDY_PODS.join(',')}).
  --p95-ms MS          p95 latency target for the pods-needed table (default 1000).
  --target-wait-ms MS  p95 queue-wait target of the desired-pods column (default 500, as capacity.targetQueueWaitMs).
  --json               Print the plan as JSON.
  -h, --help           This help.
`;

class UsageError extends Error {}

interface Output {
  write(text: string): unknown;
}

function positive(name: string, raw: string | undefined, fallback: number, integer = false): number {
  if (raw === undefined) return fallback;
  const x = Number(raw);
  if (!Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))) throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
  return x;
}

function list(name: string, raw: string | undefined, fallback: readonly number[], integer = false): number[] {
  if (raw === undefined) return [...fallback];
  return raw.split(',').map((x) => positive(name, x.trim(), NaN, integer));
}

const sortedUnique = (xs: readonly number[]) => [...new Set(xs)].sort((a, b) => a - b);

async function readGateway(from: string): Promise<CapacityReport> {
  const url = `${from.replace(/\/+$/, '')}/debug/capacity`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return (await res.json()) as CapacityReport;
}

/** Runs the command; returns the exit status. */
export async function runPlan(argv: readonly string[], out: Output, err: Output): Promise<number> {
  let plans: Plan[];
  let json = false;
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        'service-ms': { type: 'string' },
        cv: { type: 'string' },
        slots: { type: 'string' },
        from: { type: 'string' },
        pool: { type: 'string' },
        rates: { type: 'string' },
        pods: { type: 'string' },
        'p95-ms': { type: 'string' },
        'target-wait-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
    json = values.json === true;
    if (values.help) {
      out.write(planUsage);
      return 0;
    }
    if (values.from && (values['service-ms'] || values.slots || values.cv)) throw new UsageError('--from reads the profile from the gateway: leave out --service-ms, --slots and --cv');
    if (values.pool && !values.from) throw new UsageError('--pool only applies with --from');
    const cv = values.cv === undefined ? 0 : Number(values.cv);
    if (!(cv >= 0)) throw new UsageError(`--cv must be a number of at least 0, got ${JSON.stringify(values.cv)}`);
    const common = {
      pods: list('pods', values.pods, STUDY_PODS, true),
      p95TargetMs: positive('p95-ms', values['p95-ms'], 1000),
      targetWaitMs: positive('target-wait-ms', values['target-wait-ms'], 500),
    };
    const rates = values.rates === undefined ? undefined : list('rates', values.rates, []);
    if (!values.from) {
      const serviceMs = positive('service-ms', values['service-ms'], STUDY_PROFILE.serviceMs);
      const slots = positive('slots', values.slots, STUDY_PROFILE.slots, true);
      const source = values['service-ms'] || values.slots ? 'from the command line' : "the study's pod";
      plans = [plan({ ...common, serviceMs, cv, slots, rates: rates ?? [...STUDY_RATES], source })];
    } else {
      const report = await readGateway(values.from);
      const pools = report.pools.filter((p) => !values.pool || p.pool === values.pool);
      if (pools.length === 0) throw new UsageError(values.pool ? `the gateway has no pool ${values.pool}` : 'the gateway reports no pools');
      plans = [];
      for (const p of pools) {
        if (p.serviceMs === null || p.slots === null) {
          err.write(`pool ${p.pool}: ${p.slots === null ? 'unlimited slots, nothing to model' : 'no answer measured yet'}; skipped\n`);
          continue;
        }
        const measured = Math.round(p.ratePerS * 10) / 10;
        const input: PlanInput = {
          ...common,
          pods: sortedUnique([...common.pods, ...(p.currentPods > 0 ? [p.currentPods] : []), ...(p.desiredReplicas ? [p.desiredReplicas] : [])]),
          serviceMs: p.serviceMs,
          cv: p.serviceCv ?? 0,
          slots: p.slots,
          rates: sortedUnique([...(rates ?? []), ...(measured > 0 ? [measured] : rates ? [] : [1])]),
          source: `pool ${p.pool} at ${values.from}: ${p.ratePerS} req/s measured over ${p.windowMs / 1000} s, ${p.currentPods} pods now, desired ${p.desiredPods ?? '-'}`,
        };
        plans.push(plan(input));
      }
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err.write(`rasa-gateway plan: ${(e as Error).message}\n\n${planUsage}`);
      return 2;
    }
    err.write(`rasa-gateway plan: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  if (json) out.write(`${JSON.stringify({ plans }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  else out.write(plans.map(renderPlan).join('\n'));
  return 0;
}
