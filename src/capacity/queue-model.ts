/**
 * The capacity model: how long requests wait, and how many pods a pool needs, for an arrival rate and
 * a pod profile (a service-time distribution and the slots each pod runs at once).
 *
 * The gateway's central queue in front of n pods of k slots is one FIFO feeding c = n x k servers:
 * a multi-server queue with general service times, M/G/c. It has no closed form, so this uses the
 * standard two-moment approximation (Allen-Cunneen, for Poisson arrivals the Lee-Longton form):
 *
 *   P(wait)           = C(c, a)                       Erlang C, a = rate x mean service (erlangs)
 *   wait | waited     ~ exponential, mean theta       theta = (1 + cs^2) / 2 x mean / (c - a)
 *   mean wait         = P(wait) x theta               (the M/M/c wait scaled by (1 + cs^2) / 2)
 *   P(wait > t)       = P(wait) x exp(-t / theta)
 *
 * Why this one: it is exact for exponential service (cs = 1), within a few percent of simulation for
 * the near-constant service of an NLU model (cs 0.1-0.3, where the M/D/c wait is half the M/M/c one)
 * at the utilisations that matter for sizing (test/capacity-model.test.ts checks it against the
 * discrete-event simulation of the real pool), needs only the mean and cv the gateway measures per
 * second, and is cheap enough to search pod counts at every scrape. Refinements such as Cosmetatos'
 * M/D/c correction move the answer by less than a pod. Latency is wait plus service, taken as
 * independent: P(latency > t) = sum over service points s of p(s) x P(wait > t - s).
 *
 * Desired pods: the smallest n whose p95 queue wait is within the target, or, when a backlog has
 * built up beyond what that queue holds in steady state (Little: rate x mean wait), enough pods to
 * serve the arrivals and drain the excess within the horizon: (rate x horizon + excess) x mean /
 * (k x horizon). The drain is added to the bare load, not to the head-room pods, because their spare
 * capacity drains too. Nothing is subtracted for pods that are starting: the answer is a total, and
 * the autoscaler compares it with every replica it has, started or not.
 *
 * Pure functions of their arguments: no clock, no state.
 */
import { erlangC } from './erlang-c.js';
import type { ServiceTime } from './service-time.js';

export interface PodProfile {
  readonly service: ServiceTime;
  /** Requests a pod runs at once (servers per pod). */
  readonly slots: number;
}

export interface Prediction {
  readonly pods: number;
  readonly servers: number;
  /** Offered load over capacity; at 1 or more the queue grows without bound. */
  readonly utilisation: number;
  readonly stable: boolean;
  /** P(a request waits at all). */
  readonly waitProbability: number;
  /** Mean of the exponential wait of those that wait (ms); Infinity when unstable. */
  readonly thetaMs: number;
  readonly meanWaitMs: number;
}

/** Requests per second a pod of this profile completes when busy. */
export function podRate(profile: PodProfile): number {
  return (profile.slots * 1000) / profile.service.meanMs;
}

export function predict(ratePerS: number, profile: PodProfile, pods: number): Prediction {
  const servers = pods * profile.slots;
  const erlangs = (ratePerS * profile.service.meanMs) / 1000;
  const utilisation = servers > 0 ? erlangs / servers : erlangs > 0 ? Infinity : 0;
  const stable = erlangs === 0 || erlangs < servers;
  if (!stable) return { pods, servers, utilisation, stable, waitProbability: 1, thetaMs: Infinity, meanWaitMs: Infinity };
  const waitProbability = erlangC(servers, erlangs);
  const thetaMs = erlangs === 0 ? 0 : (((1 + profile.service.cv ** 2) / 2) * profile.service.meanMs) / (servers - erlangs);
  return { pods, servers, utilisation, stable, waitProbability, thetaMs, meanWaitMs: waitProbability * thetaMs };
}

/** P(queue wait > t ms). */
function waitTail(p: Prediction, tMs: number): number {
  if (tMs < 0) return 1;
  if (!p.stable) return 1;
  return p.thetaMs > 0 ? p.waitProbability * Math.exp(-tMs / p.thetaMs) : 0;
}

/** The q-quantile of the queue wait (ms): 0 when fewer than 1 - q of the requests wait. */
export function waitQuantileMs(p: Prediction, q: number): number {
  if (!p.stable) return Infinity;
  const above = 1 - q;
  return p.waitProbability <= above ? 0 : p.thetaMs * Math.log(p.waitProbability / above);
}

/** The q-quantile of the latency (queue wait + service, ms) at `pods` pods. */
export function latencyQuantileMs(ratePerS: number, profile: PodProfile, pods: number, q: number): number {
  const p = predict(ratePerS, profile, pods);
  if (!p.stable) return Infinity;
  const points = profile.service.points;
  const above = 1 - q;
  const tail = (t: number) => points.reduce((s, x) => s + x.p * waitTail(p, t - x.ms), 0);
  let lo = 0;
  let hi = Math.max(...points.map((x) => x.ms)) + waitQuantileMs(p, q) + 1;
  while (hi - lo > 0.01) {
    const mid = (lo + hi) / 2;
    if (tail(mid) > above) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Most pods a search considers: beyond, the answer is "more than any pool should have". */
const MAX_PODS = 100_000;

/** The smallest pod count (at least 1 when there is traffic, 0 without) for which `ok` holds. */
export function smallestPods(ratePerS: number, profile: PodProfile, ok: (pods: number, p: Prediction) => boolean): number {
  if (ratePerS <= 0) return 0;
  const erlangs = (ratePerS * profile.service.meanMs) / 1000;
  for (let pods = Math.max(1, Math.floor(erlangs / profile.slots) + 1); pods <= MAX_PODS; pods++) {
    if (ok(pods, predict(ratePerS, profile, pods))) return pods;
  }
  return Infinity;
}

/** Pods for the q-quantile of the queue wait to stay within `targetMs`. */
export function podsForWait(ratePerS: number, profile: PodProfile, targetMs: number, q = 0.95): number {
  return smallestPods(ratePerS, profile, (_, p) => waitQuantileMs(p, q) <= targetMs);
}

/** Pods for the q-quantile of the latency to stay within `targetMs` (Infinity if service alone exceeds it). */
export function podsForLatency(ratePerS: number, profile: PodProfile, targetMs: number, q = 0.95): number {
  const serviceAlone = latencyQuantileMs(0, profile, 1, q);
  if (serviceAlone > targetMs) return Infinity;
  return smallestPods(ratePerS, profile, (pods) => latencyQuantileMs(ratePerS, profile, pods, q) <= targetMs);
}

export interface DesiredInput {
  readonly ratePerS: number;
  readonly profile: PodProfile;
  /** Requests waiting now. */
  readonly queueLength: number;
  readonly targetWaitMs: number;
  readonly horizonMs: number;
  /** Which quantile of the wait the target bounds (0.95). */
  readonly quantile?: number;
}

export interface Desired {
  /** The answer: max(forWait, forBacklog); at least 1 while anything waits. Fractional (the autoscaler rounds up). */
  readonly pods: number;
  readonly forWait: number;
  /** Pods that serve the arrivals and drain the excess backlog within the horizon. */
  readonly forBacklog: number;
  /** Queued requests beyond the steady-state queue at `forWait` pods. */
  readonly excessBacklog: number;
}

export function desiredPods(input: DesiredInput): Desired {
  const { ratePerS, profile, queueLength, horizonMs } = input;
  const forWait = podsForWait(ratePerS, profile, input.targetWaitMs, input.quantile ?? 0.95);
  const steadyQueue = forWait > 0 && Number.isFinite(forWait) ? (ratePerS / 1000) * predict(ratePerS, profile, forWait).meanWaitMs : 0;
  const excessBacklog = Math.max(0, queueLength - steadyQueue);
  const forBacklog = (((ratePerS / 1000) * horizonMs + excessBacklog) * profile.service.meanMs) / (profile.slots * horizonMs);
  const pods = Math.max(forWait, forBacklog, queueLength > 0 ? 1 : 0);
  return { pods, forWait, forBacklog, excessBacklog };
}
