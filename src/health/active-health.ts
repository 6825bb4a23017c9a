/**
 * Active health checks (optional per pool): `GET <path>` on every pod at an interval. A pod failing
 * `unhealthyThreshold` probes in a row takes no new work until it passes `healthyThreshold` in a row.
 * Rasa's `GET /` answers only once its model is loaded, so this also catches a pod that restarted
 * behind a stale endpoint. Probes of one round run through p-queue with bounded concurrency, so a
 * pool of hundreds of pods is probed without a burst of hundreds of sockets.
 */
import PQueue from 'p-queue';
import type { HealthCheckConfig } from '../config.js';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';

interface ProbeRecord {
  passes: number;
  fails: number;
}

export class ActiveHealthChecker {
  private readonly records = new Map<Backend, ProbeRecord>();
  private readonly probes = new PQueue({ concurrency: 16 });
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly config: HealthCheckConfig,
    private readonly onEject: (backend: Backend) => void = () => {},
  ) {
    pool.listen({ backendRemoved: (b) => this.records.delete(b) });
  }

  start(): void {
    this.timer = setInterval(() => this.round(), this.config.intervalMs);
    this.timer.unref();
    this.round();
  }

  /** Probes every pod once; resolves when the round is done (tests await it). */
  async round(): Promise<void> {
    if (this.probes.size > 0) return; // the previous round is still running
    await Promise.all([...this.pool.backends].map((b) => this.probes.add(() => this.probe(b))));
  }

  private async probe(backend: Backend): Promise<void> {
    let healthy: boolean;
    try {
      const res = await fetch(backend.origin + this.config.path, { signal: AbortSignal.timeout(this.config.timeoutMs) });
      await res.arrayBuffer();
      healthy = res.status < 400;
    } catch {
      healthy = false;
    }
    if (backend.state === 'gone') return;
    let record = this.records.get(backend);
    if (!record) {
      record = { passes: 0, fails: 0 };
      this.records.set(backend, record);
    }
    if (healthy) {
      record.fails = 0;
      if (++record.passes >= this.config.healthyThreshold && backend.ejectedBy === 'health') this.pool.restore(backend);
    } else {
      record.passes = 0;
      if (++record.fails >= this.config.unhealthyThreshold && backend.state !== 'ejected') {
        this.pool.eject(backend, 'health');
        this.onEject(backend);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.probes.clear();
  }
}
