/**
 * Schedules computed, not measured: a discrete-event simulation of a burst on pods modelled as the
 * study describes them (K parallel slots, a fixed service time, FIFO inside the pod). With fixed
 * service times and FIFO admission, simulating in arrival order is exact: request i's fate depends
 * only on the slots' busy-until times left by requests 0..i-1.
 *
 * - `greedy`: the central FIFO queue (HAProxy `maxconn` + queue, the gateway's queue): the head takes
 *   the first slot that frees, anywhere; among several slots free at the same moment, the one that
 *   finishes it first (the fastest pod). This is the "ideal" row of the tables.
 * - `earliest-completion`: the head goes to the slot that completes it first, even if that means
 *   waiting for a busy fast pod while a slow one is idle (issue 9 item 3). Never worse on max latency.
 * - `round-robin` and `least-outstanding`: no central queue, the pod is chosen at arrival and the
 *   request waits inside it; used to estimate how long measured rows will take.
 */

export interface PodModel {
  readonly slots: number;
  readonly serviceMs: number;
}

export type Schedule = 'greedy' | 'earliest-completion' | 'round-robin' | 'least-outstanding';

export interface Simulated {
  readonly latenciesMs: number[];
  /** Index of the pod that served each request. */
  readonly pods: number[];
  /** From the first arrival to the last completion. */
  readonly makespanMs: number;
}

/** The study's arrivals: request i of n starts at i/n of the window. */
export function burstArrivals(n: number, windowMs: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * windowMs) / n);
}

interface Slot {
  readonly pod: number;
  readonly serviceMs: number;
  freeAt: number;
}

export function simulate(schedule: Schedule, arrivalsMs: readonly number[], pods: readonly PodModel[]): Simulated {
  const slots: Slot[] = [];
  pods.forEach((p, pod) => {
    for (let k = 0; k < p.slots; k++) slots.push({ pod, serviceMs: p.serviceMs, freeAt: 0 });
  });
  const slotsOf = pods.map((_, pod) => slots.filter((s) => s.pod === pod));
  const completions: number[][] = pods.map(() => []);
  const latenciesMs: number[] = [];
  const served: number[] = [];
  let end = 0;
  arrivalsMs.forEach((t, i) => {
    let slot: Slot;
    if (schedule === 'greedy' || schedule === 'earliest-completion') {
      slot = best(slots, t, schedule);
    } else {
      const pod = schedule === 'round-robin' ? i % pods.length : leastOutstanding(completions, t);
      slot = best(slotsOf[pod] as Slot[], t, 'greedy');
    }
    const done = Math.max(t, slot.freeAt) + slot.serviceMs;
    slot.freeAt = done;
    (completions[slot.pod] as number[]).push(done);
    latenciesMs.push(done - t);
    served.push(slot.pod);
    end = Math.max(end, done);
  });
  return { latenciesMs, pods: served, makespanMs: end - (arrivalsMs[0] ?? 0) };
}

function best(slots: readonly Slot[], t: number, schedule: 'greedy' | 'earliest-completion'): Slot {
  let chosen = slots[0] as Slot;
  let chosenStart = Math.max(t, chosen.freeAt);
  for (let i = 1; i < slots.length; i++) {
    const s = slots[i] as Slot;
    const start = Math.max(t, s.freeAt);
    const better =
      schedule === 'greedy'
        ? start < chosenStart || (start === chosenStart && s.serviceMs < chosen.serviceMs)
        : start + s.serviceMs < chosenStart + chosen.serviceMs || (start + s.serviceMs === chosenStart + chosen.serviceMs && start < chosenStart);
    if (better) {
      chosen = s;
      chosenStart = start;
    }
  }
  return chosen;
}

/** The pod with the fewest requests not yet completed at time t (lowest index on ties). */
function leastOutstanding(completions: readonly number[][], t: number): number {
  let pod = 0;
  let fewest = Infinity;
  completions.forEach((done, p) => {
    let outstanding = 0;
    for (const c of done) if (c > t) outstanding++;
    if (outstanding < fewest) {
      fewest = outstanding;
      pod = p;
    }
  });
  return pod;
}
