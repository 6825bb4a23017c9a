/**
 * Learns which model each pod serves (`GET /status` -> `model_id`) and whether the pool agrees. The
 * parse cache serves only while every pod that takes work reports the same model; during a rollout,
 * or while any pod's model is unknown, it is bypassed. The consensus is recomputed when a poll round
 * ends or the pod set changes, never per request. Polls fan out through p-queue with bounded
 * concurrency.
 */
import PQueue from 'p-queue';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import { statusRequestAuth, type RasaAuth } from './rasa-auth.js';

export class ModelWatcher {
  private readonly models = new Map<Backend, string>();
  private readonly polls = new PQueue({ concurrency: 8 });
  private timer: NodeJS.Timeout | undefined;
  /** The model every working pod reports; undefined during a rollout or while any is unknown. */
  consensus: string | undefined = undefined;

  constructor(
    private readonly pool: Pool,
    private readonly auth: RasaAuth,
    private readonly intervalMs: number,
    private readonly timeoutMs = 5000,
  ) {
    pool.listen({
      backendAdded: (b) => {
        this.recompute();
        void this.polls.add(() => this.poll(b)).then(() => this.recompute());
      },
      backendRemoved: (b) => {
        this.models.delete(b);
        this.recompute();
      },
    });
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
    void this.round();
  }

  async round(): Promise<void> {
    await Promise.all([...this.pool.backends].map((b) => this.polls.add(() => this.poll(b))));
    this.recompute();
  }

  modelOf(backend: Backend): string | undefined {
    return this.models.get(backend);
  }

  private async poll(backend: Backend): Promise<void> {
    try {
      const { query, headers } = await statusRequestAuth(this.auth);
      const res = await fetch(`${backend.origin}/status${query}`, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
      const body = (await res.json()) as { model_id?: unknown };
      if (res.ok && typeof body.model_id === 'string') this.models.set(backend, body.model_id);
      else this.models.delete(backend);
    } catch {
      this.models.delete(backend);
    }
  }

  /** Also called by the pool's state changes (ejection, draining) through `recompute`. */
  recompute(): void {
    let agreed: string | undefined;
    for (const b of this.pool.backends) {
      if (!b.acceptsNewWork) continue;
      const model = this.models.get(b);
      if (model === undefined || (agreed !== undefined && model !== agreed)) {
        this.consensus = undefined;
        return;
      }
      agreed = model;
    }
    this.consensus = agreed;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.polls.clear();
  }
}
