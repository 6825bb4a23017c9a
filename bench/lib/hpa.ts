/**
 * The Kubernetes HorizontalPodAutoscaler's control loop (autoscaling/v2), as documented and as
 * kube-controller-manager implements it (pkg/controller/podautoscaler), for one External metric
 * with an `AverageValue` target, the shape of deploy/'s HPA on the gateway's demand:
 *
 * 1. usageRatio = total / (target x current); within `tolerance` of 1 the recommendation is the
 *    current count, else ceil(total / target) (= ceil(current x metric / target) with
 *    metric = total / current).
 * 2. Stabilisation: the recommendation is recorded; scaling up uses the lowest recommendation of the
 *    scale-up window, scaling down the highest of the scale-down window.
 * 3. Rate policies: per direction, each policy allows a change relative to the replicas at the
 *    start of its period (Pods: +/- value; Percent: ceil(start x (1 + v/100)) up, trunc(start x
 *    (1 - v/100)) down); `select: 'Max'` takes the policy allowing the largest change.
 * 4. Clamped to [min, max].
 *
 * Times are in milliseconds of the caller's clock, so a scenario can run the loop faster than real
 * time by scaling every duration it passes in.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from './paths.js';

export interface ScalingPolicy {
  readonly type: 'Pods' | 'Percent';
  readonly value: number;
  readonly periodMs: number;
}

export interface ScalingRules {
  readonly stabilizationMs: number;
  readonly select: 'Max' | 'Min';
  readonly policies: readonly ScalingPolicy[];
}

export interface HpaSpec {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** The metric's AverageValue target per pod. */
  readonly target: number;
  readonly tolerance: number;
  readonly scaleUp: ScalingRules;
  readonly scaleDown: ScalingRules;
}

export interface HpaDecision {
  readonly current: number;
  /** The metric as the HPA shows it: total / current. */
  readonly metric: number;
  readonly usageRatio: number;
  /** Step 1, before stabilisation and rate limits. */
  readonly recommendation: number;
  readonly desired: number;
  /** What held the change back, if anything. */
  readonly limitedBy?: 'tolerance' | 'stabilization' | 'rate' | 'bounds';
}

interface ChartPolicy {
  readonly type: 'Pods' | 'Percent';
  readonly value: number;
  readonly periodSeconds: number;
}

interface ChartRules {
  readonly stabilizationWindowSeconds?: number | string | null;
  readonly selectPolicy?: 'Max' | 'Min';
  readonly policies: readonly ChartPolicy[];
}

/**
 * deploy/'s behaviour for `signal`, read from the chart's values.yaml (`autoscaling.behavior`, the
 * scale-down window from `autoscaling.scaleDownWindowSeconds` where the behaviour sets none, as the
 * chart's template does), every duration divided by `timeScale`.
 */
export function deployBehaviour(timeScale: number, signal: 'desiredPods' | 'demand'): Pick<HpaSpec, 'scaleUp' | 'scaleDown'> {
  const values = parseYaml(readFileSync(join(repoRoot, 'deploy', 'helm', 'rasa-gateway', 'values.yaml'), 'utf8')) as {
    autoscaling: { behavior: { scaleUp: ChartRules; scaleDown: ChartRules }; scaleDownWindowSeconds: Record<string, number> };
  };
  const { behavior, scaleDownWindowSeconds } = values.autoscaling;
  const ms = (seconds: number) => (seconds * 1000) / timeScale;
  const rules = (r: ChartRules, fallbackSeconds: number): ScalingRules => {
    const set = r.stabilizationWindowSeconds;
    return {
      stabilizationMs: ms(set === undefined || set === null || set === '' ? fallbackSeconds : Number(set)),
      select: r.selectPolicy ?? 'Max',
      policies: r.policies.map((p) => ({ type: p.type, value: p.value, periodMs: ms(p.periodSeconds) })),
    };
  };
  // Kubernetes' defaults where the chart sets no window: 0 s up, 300 s down.
  return { scaleUp: rules(behavior.scaleUp, 0), scaleDown: rules(behavior.scaleDown, scaleDownWindowSeconds[signal] ?? 300) };
}

export class Hpa {
  private readonly recommendations: { atMs: number; replicas: number }[] = [];
  private readonly events: { atMs: number; delta: number }[] = [];

  constructor(readonly spec: HpaSpec) {}

  /** One sync of the loop: `current` replicas (the scale subresource), `total` = the metric's sum. */
  step(nowMs: number, current: number, total: number): HpaDecision {
    const { spec } = this;
    const usageRatio = current > 0 ? total / (spec.target * current) : Infinity;
    const withinTolerance = Math.abs(usageRatio - 1) <= spec.tolerance;
    const recommendation = withinTolerance ? current : Math.ceil(total / spec.target);
    // Stabilisation (stabilizeRecommendationWithBehaviors).
    let up = recommendation;
    let down = recommendation;
    for (const r of this.recommendations) {
      if (r.atMs > nowMs - spec.scaleUp.stabilizationMs) up = Math.min(up, r.replicas);
      if (r.atMs > nowMs - spec.scaleDown.stabilizationMs) down = Math.max(down, r.replicas);
    }
    this.recommendations.push({ atMs: nowMs, replicas: recommendation });
    const keepMs = Math.max(spec.scaleUp.stabilizationMs, spec.scaleDown.stabilizationMs);
    while (this.recommendations.length > 0 && (this.recommendations[0]?.atMs ?? 0) <= nowMs - keepMs) this.recommendations.shift();
    let stabilized = current;
    if (stabilized < up) stabilized = up;
    if (stabilized > down) stabilized = down;
    // Rate policies and bounds (convertDesiredReplicasWithBehaviorRate).
    let desired = stabilized;
    let limitedBy: HpaDecision['limitedBy'] = withinTolerance ? 'tolerance' : stabilized !== recommendation ? 'stabilization' : undefined;
    if (stabilized > current) {
      const limit = Math.max(current, this.upLimit(nowMs, current));
      const bounded = Math.min(stabilized, limit, spec.maxReplicas);
      if (bounded < stabilized) limitedBy = bounded === limit ? 'rate' : 'bounds';
      desired = bounded;
    } else if (stabilized < current) {
      const limit = Math.min(current, this.downLimit(nowMs, current));
      const bounded = Math.max(stabilized, limit, spec.minReplicas);
      if (bounded > stabilized) limitedBy = bounded === limit ? 'rate' : 'bounds';
      desired = bounded;
    }
    desired = Math.min(spec.maxReplicas, Math.max(spec.minReplicas, desired));
    if (desired !== current) this.events.push({ atMs: nowMs, delta: desired - current });
    const periodMs = Math.max(...[...spec.scaleUp.policies, ...spec.scaleDown.policies].map((p) => p.periodMs));
    while (this.events.length > 0 && (this.events[0]?.atMs ?? 0) <= nowMs - periodMs) this.events.shift();
    return { current, metric: current > 0 ? total / current : total, usageRatio, recommendation, desired, ...(limitedBy ? { limitedBy } : {}) };
  }

  private changedWithin(nowMs: number, periodMs: number, sign: 1 | -1): number {
    return this.events.filter((e) => e.atMs > nowMs - periodMs && Math.sign(e.delta) === sign).reduce((s, e) => s + Math.abs(e.delta), 0);
  }

  private upLimit(nowMs: number, current: number): number {
    const proposals = this.spec.scaleUp.policies.map((p) => {
      const start = current - this.changedWithin(nowMs, p.periodMs, 1);
      return p.type === 'Pods' ? start + p.value : Math.ceil(start * (1 + p.value / 100));
    });
    return this.spec.scaleUp.select === 'Max' ? Math.max(...proposals) : Math.min(...proposals);
  }

  private downLimit(nowMs: number, current: number): number {
    const proposals = this.spec.scaleDown.policies.map((p) => {
      const start = current + this.changedWithin(nowMs, p.periodMs, -1);
      return p.type === 'Pods' ? start - p.value : Math.trunc(start * (1 - p.value / 100));
    });
    return this.spec.scaleDown.select === 'Max' ? Math.min(...proposals) : Math.max(...proposals);
  }
}
