/**
 * A Deployment of emulated Rasa pods behind a Service, as the gateway's `kubernetes:` discovery sees
 * it: the fake API server of the tests (test/helpers/fake-apiserver.ts, real list+watch protocol)
 * holds one EndpointSlice per pod, written the way the EndpointSlice controller does:
 * - a new pod is listening at once but appears not ready until its start-up delay (image pull and
 *   model load for Rasa) has passed, then ready;
 * - a pod the ReplicaSet removes (not-ready pods first, then the newest) turns terminating
 *   (ready false, serving while it still answers), finishes what it holds, then its endpoint is
 *   deleted and the process stops.
 * The gateway runs as its own process with KUBECONFIG pointing at the fake (`kubeconfigFile`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RasaPod } from '../../src/emulator/rasa-pod.js';
import { FakeApiServer, makeSlice } from '../../test/helpers/fake-apiserver.js';
import { startPod, type PodExtras } from './pods.js';
import { benchTmp, sleep } from './procs.js';
import type { PodModel } from './ideal.js';

export { FakeApiServer };

export const NAMESPACE = 'rasa';

/** A kubeconfig for the fake API server (plain HTTP, its bearer token), written to a temp file. */
export function kubeconfigFile(api: FakeApiServer): string {
  const dir = benchTmp('kube');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, api.kubeconfigYaml(NAMESPACE));
  return file;
}

export type PodPhase = 'starting' | 'ready' | 'terminating';

export interface DeployedPod {
  readonly name: string;
  readonly pod: RasaPod;
  phase: PodPhase;
  readonly createdMs: number;
  readyMs?: number;
  timer?: NodeJS.Timeout;
}

export interface DeploymentOptions {
  readonly api: FakeApiServer;
  /** The Service whose EndpointSlices the gateway watches. */
  readonly service: string;
  readonly pod: PodModel;
  /** From creation to ready. */
  readonly startupMs: number;
  /** Least time a removed pod stays terminating (the gateway sees the change first). */
  readonly terminatingMs?: number;
  readonly extras?: PodExtras;
}

export class EmulatedDeployment {
  readonly pods: DeployedPod[] = [];
  private seq = 0;
  private readonly retiring = new Set<Promise<void>>();

  constructor(readonly options: DeploymentOptions) {}

  /** spec.replicas as the scale subresource reports it: pods not terminating. */
  get replicas(): number {
    return this.pods.filter((p) => p.phase !== 'terminating').length;
  }

  get readyCount(): number {
    return this.pods.filter((p) => p.phase === 'ready').length;
  }

  /** Creates or removes pods until `n` are not terminating; `startupMs` overrides the delay (0: ready at once). */
  async scale(n: number, startupMs = this.options.startupMs): Promise<void> {
    while (this.replicas < n) await this.add(startupMs);
    while (this.replicas > n) this.remove(this.victim());
  }

  private sliceOf(p: DeployedPod) {
    const ready = p.phase === 'ready';
    return makeSlice({
      name: `${this.options.service}-${p.name}`,
      service: this.options.service,
      namespace: NAMESPACE,
      ports: [{ name: 'http', port: Number(new URL(p.pod.url).port), protocol: 'TCP' }],
      endpoints: [{ ip: '127.0.0.1', pod: p.name, ready, serving: ready || (p.phase === 'terminating' && p.readyMs !== undefined), terminating: p.phase === 'terminating' }],
    });
  }

  private async add(startupMs: number): Promise<void> {
    const name = `${this.options.service}-${this.seq++}`;
    const pod = await startPod({ name, ...this.options.pod }, 1, this.options.extras);
    const p: DeployedPod = { name, pod, phase: startupMs > 0 ? 'starting' : 'ready', createdMs: performance.now() };
    if (p.phase === 'ready') p.readyMs = p.createdMs;
    this.pods.push(p);
    this.options.api.apply(this.sliceOf(p));
    if (startupMs > 0) {
      p.timer = setTimeout(() => {
        if (p.phase !== 'starting') return;
        p.phase = 'ready';
        p.readyMs = performance.now();
        this.options.api.apply(this.sliceOf(p));
      }, startupMs);
    }
  }

  /** The ReplicaSet's choice: a pod not ready yet before a ready one; among equals, the newest. */
  private victim(): DeployedPod {
    const live = this.pods.filter((p) => p.phase !== 'terminating');
    const rank = (p: DeployedPod) => (p.phase === 'starting' ? 0 : 1);
    live.sort((a, b) => rank(a) - rank(b) || (b.readyMs ?? b.createdMs) - (a.readyMs ?? a.createdMs));
    return live[0] as DeployedPod;
  }

  private remove(p: DeployedPod): void {
    clearTimeout(p.timer);
    p.phase = 'terminating';
    this.options.api.apply(this.sliceOf(p));
    const done = this.retire(p);
    this.retiring.add(done);
    void done.then(() => this.retiring.delete(done));
  }

  /** Finishes what the pod holds (up to 30 s), then its endpoint goes and the process stops. */
  private async retire(p: DeployedPod): Promise<void> {
    await sleep(this.options.terminatingMs ?? 500);
    const deadline = performance.now() + 30_000;
    while ((p.pod.running > 0 || p.pod.queued > 0) && performance.now() < deadline) await sleep(50);
    this.options.api.delete(`${this.options.service}-${p.name}`, NAMESPACE);
    await p.pod.close();
    this.pods.splice(this.pods.indexOf(p), 1);
  }

  async close(): Promise<void> {
    for (const p of this.pods) clearTimeout(p.timer);
    await Promise.all([...this.retiring]);
    await Promise.all(this.pods.map((p) => p.pod.close()));
    this.pods.length = 0;
  }
}
