/**
 * The capacity estimate as JSON: what `GET /debug/capacity` answers, the status page shows and
 * `rasa-gateway plan --from` reads back. One shape for all three, so the planner on an operator's
 * laptop sees exactly the profile the running gateway measured. Numbers are rounded for reading;
 * an overloaded expectation (no finite p95) is `null` with `overloaded: true`.
 */
import type { CapacitySnapshot } from './pool-capacity.js';

export interface PoolCapacityReport {
  readonly pool: string;
  readonly ratePerS: number;
  readonly serviceMs: number | null;
  readonly serviceCv: number | null;
  readonly slots: number | null;
  readonly currentPods: number;
  readonly desiredPods: number | null;
  /** What the autoscaler makes of `desiredPods` (AverageValue 1: the next integer up). */
  readonly desiredReplicas: number | null;
  readonly queueLength: number;
  readonly expectedP95Ms: number | null;
  readonly overloaded: boolean;
  readonly classes: readonly { readonly name: string; readonly ratePerS: number; readonly serviceMs: number | null; readonly serviceCv: number | null; readonly completions: number }[];
  readonly targetQueueWaitMs: number;
  readonly horizonMs: number;
  readonly windowMs: number;
}

export interface CapacityReport {
  readonly pools: readonly PoolCapacityReport[];
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const maybe = (x: number | null | undefined, digits: number) => (x === null || x === undefined ? null : round(x, digits));

export function capacityReport(s: CapacitySnapshot): PoolCapacityReport {
  const overloaded = s.expectedP95Ms === Infinity;
  return {
    pool: s.pool,
    ratePerS: round(s.ratePerS, 3),
    serviceMs: maybe(s.service?.meanMs, 1),
    serviceCv: maybe(s.service?.cv, 3),
    slots: maybe(s.slots, 2),
    currentPods: s.currentPods,
    desiredPods: maybe(s.desiredPods, 3),
    desiredReplicas: s.desiredPods === null ? null : Math.ceil(round(s.desiredPods, 6)),
    queueLength: s.queueLength,
    expectedP95Ms: overloaded ? null : maybe(s.expectedP95Ms, 1),
    overloaded,
    classes: s.classes.map((c) => ({ name: c.name, ratePerS: round(c.ratePerS, 3), serviceMs: maybe(c.meanMs, 1), serviceCv: maybe(c.cv, 3), completions: c.completions })),
    targetQueueWaitMs: s.config.targetQueueWaitMs,
    horizonMs: s.config.horizonMs,
    windowMs: s.config.windowMs,
  };
}
