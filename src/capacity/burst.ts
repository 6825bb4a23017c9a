/**
 * The study's experiment, computed: n requests sent evenly over one window (request i at i x
 * window / n) into the central queue of `servers` slots, each request taking the service time; every
 * request starts on the first slot that frees (the gateway's queue, and the best schedule any
 * balancer can reach). The steady-state model (queue-model.ts) answers for sustained arrivals; a
 * one-second burst into an idle pool is a transient it does not describe, so the planner prints both.
 * Service times are taken at their mean: a burst's p95 is set by how many requests queue, not by
 * the spread of one request.
 */

/** Latencies (ms) of the burst, in send order. */
export function burstLatencies(requests: number, servers: number, serviceMs: number, windowMs = 1000): number[] {
  const freeAt = new Array<number>(Math.max(1, servers)).fill(0);
  const out: number[] = [];
  for (let i = 0; i < requests; i++) {
    const sentMs = (i * windowMs) / requests;
    let slot = 0;
    for (let k = 1; k < freeAt.length; k++) if ((freeAt[k] as number) < (freeAt[slot] as number)) slot = k;
    const startMs = Math.max(sentMs, freeAt[slot] as number);
    freeAt[slot] = startMs + serviceMs;
    out.push(startMs + serviceMs - sentMs);
  }
  return out;
}

/** Nearest-rank q-quantile of the burst's latencies (ms). */
export function burstQuantileMs(requests: number, servers: number, serviceMs: number, q: number, windowMs = 1000): number {
  const sorted = burstLatencies(requests, servers, serviceMs, windowMs).sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0;
}
