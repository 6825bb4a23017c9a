/**
 * Cluster shapes: named sets of emulated Rasa pods (slots + service time), started in the bench
 * process. The pods are timers, so hundreds of requests per second cost the load generator's core
 * almost nothing, and the bench can see exactly when every pod is idle again between bursts.
 * A time scale shrinks service times (and the scenario shrinks its arrival window by the same factor)
 * for `--quick` runs; latencies are reported scaled back, in the shape's own seconds.
 * Each pod's peak load is tracked exactly: the requests it held at once, running plus waiting inside
 * it (the emulator's own `maxRunning` never passes its slots, since the rest wait in its FIFO), sampled
 * right after each request is scheduled, the only moment that sum grows.
 */
import type { IncomingMessage } from 'node:http';
import { startRasaPod, type RasaPod } from '../../src/emulator/rasa-pod.js';
import type { PodModel } from './ideal.js';
import { sleep } from './procs.js';

export interface PodSpec extends PodModel {
  readonly name: string;
}

export interface Shape {
  readonly id: string;
  readonly label: string;
  readonly pods: readonly PodSpec[];
}

export interface PodGroup {
  readonly count: number;
  readonly slots: number;
  readonly serviceMs: number;
  readonly tag?: string;
}

/** A shape from groups of identical pods, e.g. 3 x (2 slots, 300 ms) + 1 x (2 slots, 900 ms). */
export function shape(id: string, groups: readonly PodGroup[], label?: string): Shape {
  const pods: PodSpec[] = [];
  for (const g of groups) {
    for (let i = 0; i < g.count; i++) pods.push({ name: `${g.tag ?? 'pod'}-${pods.length}`, slots: g.slots, serviceMs: g.serviceMs });
  }
  return { id, label: label ?? describeGroups(groups), pods };
}

export function describeGroups(groups: readonly PodGroup[]): string {
  return groups
    .filter((g) => g.count > 0)
    .map((g) => `${g.count}x(${g.slots} slots, ${g.serviceMs} ms)`)
    .join(' + ');
}

export interface Cluster {
  readonly shape: Shape;
  readonly pods: readonly RasaPod[];
  readonly urls: readonly string[];
  /** Resolves once no pod runs or queues a request (between bursts). */
  idle(timeoutMs?: number): Promise<boolean>;
  /** Requests served per pod since the last call. */
  takeCounts(): number[];
  /** Per pod, the most requests it held at once (running + waiting inside it) since the last call. */
  takePeaks(): number[];
  close(): Promise<void>;
}

/** Pod options beyond the shape: Rasa's `--auth-token` and the model each pod reports on /status. */
export interface PodExtras {
  readonly authToken?: string;
  readonly modelId?: string;
}

/** One emulated pod of a spec, at a time scale, listening on 127.0.0.1. */
export function startPod(p: PodSpec, timeScale = 1, extras: PodExtras = {}): Promise<RasaPod> {
  return startRasaPod({ name: p.name, slots: p.slots, serviceTimeMs: p.serviceMs * timeScale, ...extras });
}

export async function startCluster(s: Shape, timeScale = 1, extras: PodExtras = {}): Promise<Cluster> {
  const pods = await Promise.all(s.pods.map((p) => startPod(p, timeScale, extras)));
  const seen = pods.map(() => 0);
  const peaks = pods.map(() => 0);
  pods.forEach((p, i) => {
    // Registered after the pod's own handler, so this `end` listener runs after the pod scheduled the request.
    p.server.on('request', (req: IncomingMessage) => {
      req.once('end', () => {
        peaks[i] = Math.max(peaks[i] as number, p.running + p.queued);
      });
    });
  });
  return {
    shape: s,
    pods,
    urls: pods.map((p) => p.url),
    async idle(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (pods.every((p) => p.running === 0 && p.queued === 0)) return true;
        await sleep(20);
      }
      return false;
    },
    takeCounts() {
      return pods.map((p, i) => {
        const n = p.handled - (seen[i] as number);
        seen[i] = p.handled;
        return n;
      });
    },
    takePeaks() {
      const out = [...peaks];
      peaks.fill(0);
      return out;
    },
    async close() {
      await Promise.all(pods.map((p) => p.close()));
    },
  };
}

/** Total requests per second the shape can serve when every slot is busy. */
export function capacityPerSecond(s: Shape): number {
  return s.pods.reduce((sum, p) => sum + (p.slots * 1000) / p.serviceMs, 0);
}
