/**
 * `rasa-gateway plan`, the computation and its printout: for a pod profile (service time, its cv,
 * slots) and arrival rates, the p95 latency to expect at each pod count and the pods each rate needs
 * for a p95 target, by the same model the gateway's desired-pods metric uses (queue-model.ts). Cells
 * the study measured carry its numbers (study.ts) and the one-second burst it sent (burst.ts), so the
 * model can be read against a real cluster. Pure: plan-cli.ts does the arguments and the I/O.
 */
import { markdownTable } from '../util/markdown-table.js';
import { burstQuantileMs } from './burst.js';
import { latencyQuantileMs, podRate, podsForLatency, podsForWait, predict, type PodProfile } from './queue-model.js';
import { fromMoments } from './service-time.js';
import { STUDY_MEASURED } from './study.js';

export interface PlanInput {
  readonly serviceMs: number;
  readonly cv: number;
  readonly slots: number;
  readonly rates: readonly number[];
  readonly pods: readonly number[];
  /** The p95 latency the "pods needed" column aims at. */
  readonly p95TargetMs: number;
  /** The p95 queue wait the gateway's `gateway_pool_desired_pods` aims at (the pool's capacity.targetQueueWaitMs). */
  readonly targetWaitMs: number;
  /** Where the profile came from, for the heading. */
  readonly source: string;
}

export interface PlanCell {
  readonly pods: number;
  readonly ratePerS: number;
  readonly utilisation: number;
  /** Sustained Poisson arrivals at the rate; Infinity when the pods cannot keep up. */
  readonly sustainedP95Ms: number;
  /** round(rate) requests sent evenly over one second into idle pods, as the study did. */
  readonly burstP95Ms: number;
  /** The study's [fastest, slowest] answer (s) for this cell, when it measured one. */
  readonly study: readonly [number, number] | null;
}

export interface PlanNeed {
  readonly ratePerS: number;
  /** rate x service / slots: pods at 100 % busy. */
  readonly bareLoadPods: number;
  readonly podsForP95: number;
  readonly p95Ms: number;
  readonly utilisation: number;
  /** What the gateway's metric asks for at this rate (no backlog). */
  readonly desiredPods: number;
}

export interface Plan {
  readonly input: PlanInput;
  readonly podRatePerS: number;
  /** By pod count (input.pods order), then by rate (input.rates order). */
  readonly cells: readonly (readonly PlanCell[])[];
  readonly needs: readonly PlanNeed[];
}

export function plan(input: PlanInput): Plan {
  const profile: PodProfile = { service: fromMoments(input.serviceMs, input.cv), slots: input.slots };
  const cells = input.pods.map((pods) =>
    input.rates.map((ratePerS) => ({
      pods,
      ratePerS,
      utilisation: predict(ratePerS, profile, pods).utilisation,
      sustainedP95Ms: latencyQuantileMs(ratePerS, profile, pods, 0.95),
      burstP95Ms: burstQuantileMs(Math.max(1, Math.round(ratePerS)), pods * input.slots, input.serviceMs, 0.95),
      study: STUDY_MEASURED[pods]?.[ratePerS] ?? null,
    })),
  );
  const needs = input.rates.map((ratePerS) => {
    const podsForP95 = podsForLatency(ratePerS, profile, input.p95TargetMs);
    const at = Number.isFinite(podsForP95) ? podsForP95 : 0;
    return {
      ratePerS,
      bareLoadPods: (ratePerS * input.serviceMs) / 1000 / input.slots,
      podsForP95,
      p95Ms: at > 0 ? latencyQuantileMs(ratePerS, profile, at, 0.95) : Infinity,
      utilisation: at > 0 ? predict(ratePerS, profile, at).utilisation : NaN,
      desiredPods: podsForWait(ratePerS, profile, input.targetWaitMs),
    };
  });
  return { input, podRatePerS: podRate(profile), cells, needs };
}

const s2 = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : 'overload');
const rateLabel = (r: number) => `${Number.isInteger(r) ? r : r.toFixed(1)} req/s`;

export function renderPlan(p: Plan): string {
  const { input } = p;
  const anyStudy = p.cells.some((row) => row.some((c) => c.study));
  const latency = markdownTable({
    header: ['pods', ...input.rates.map(rateLabel)],
    rows: p.cells.map((row, i) => [
      String(input.pods[i]),
      ...row.map((c) => [s2(c.sustainedP95Ms), s2(c.burstP95Ms), ...(c.study ? [`${c.study[0]}-${c.study[1]}`] : anyStudy ? ['-'] : [])].join(' / ')),
    ]),
  });
  const needs = markdownTable({
    header: ['rate', 'bare load (pods)', `pods for p95 <= ${s2(input.p95TargetMs)} s`, 'expected p95 s', 'utilisation', `desired pods (wait p95 <= ${input.targetWaitMs} ms)`],
    rows: p.needs.map((n) => [
      rateLabel(n.ratePerS),
      n.bareLoadPods.toFixed(2),
      Number.isFinite(n.podsForP95) ? String(n.podsForP95) : 'none (service alone exceeds it)',
      s2(n.p95Ms),
      Number.isFinite(n.utilisation) ? `${(n.utilisation * 100).toFixed(0)} %` : '-',
      String(n.desiredPods),
    ]),
  });
  return [
    `Pod profile (${input.source}): ${input.slots} slots x ${input.serviceMs.toFixed(0)} ms, cv ${input.cv.toFixed(2)}: ${p.podRatePerS.toFixed(2)} req/s per busy pod.`,
    'Model: M/G/c (Erlang C, Allen-Cunneen wait), latency = queue wait + service.',
    '',
    `Expected p95 latency in seconds, by pods and rate. Each cell: sustained arrivals at that rate / a burst of that many requests in one second into idle pods${anyStudy ? " (the study's experiment) / the study's measured range, first to last answer" : ''}.`,
    '',
    latency,
    '',
    `Pods needed for p95 latency under ${s2(input.p95TargetMs)} s (sustained arrivals):`,
    '',
    needs,
    '',
  ].join('\n');
}
