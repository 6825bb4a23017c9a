/**
 * Passive ejection (Envoy's outlier detection, simplified): a pod whose requests fail N times in a
 * row (connect errors, resets, timeouts, 5xx) leaves rotation for an interval that doubles with each
 * ejection up to a maximum, then returns on probation: one more failure streak ejects it for longer,
 * while a run of successes earns the interval back down. Never more than `maxPercent` of the pool is
 * ejected at once, so a pool-wide outage (Rasa itself failing) does not empty the pool.
 */
import type { EjectionConfig } from '../config.js';
import type { Backend } from '../pool/backend.js';
import { isPodFailure, type Outcome, type Pool } from '../pool/pool.js';

interface PodRecord {
  consecutiveFailures: number;
  successes: number;
  ejections: number;
  timer: NodeJS.Timeout | undefined;
}

export class OutlierDetector {
  private readonly records = new Map<Backend, PodRecord>();

  constructor(
    private readonly pool: Pool,
    private readonly config: EjectionConfig,
    private readonly onEject: (backend: Backend) => void = () => {},
  ) {
    pool.listen({ backendRemoved: (backend) => this.forget(backend) });
  }

  /** One attempt's outcome on `backend` (wired to the pool's lease ends). */
  observe(backend: Backend, outcome: Outcome): void {
    if (this.config.consecutiveFailures === 0) return;
    let record = this.records.get(backend);
    if (outcome === 'ok') {
      if (!record) return;
      record.consecutiveFailures = 0;
      // Twice the failure threshold in successes halves the next ejection's length.
      if (record.ejections > 0 && ++record.successes >= this.config.consecutiveFailures * 2) {
        record.ejections--;
        record.successes = 0;
      }
      return;
    }
    if (!isPodFailure(outcome)) return; // the client or the gateway caused it, not the pod
    if (!record) {
      record = { consecutiveFailures: 0, successes: 0, ejections: 0, timer: undefined };
      this.records.set(backend, record);
    }
    record.successes = 0;
    if (++record.consecutiveFailures < this.config.consecutiveFailures) return;
    if (backend.state === 'ejected' || !this.mayEject()) return;
    record.consecutiveFailures = 0;
    const intervalMs = Math.min(this.config.maxMs, this.config.baseMs * 2 ** record.ejections);
    record.ejections++;
    this.pool.eject(backend, 'passive');
    this.onEject(backend);
    record.timer = setTimeout(() => {
      record!.timer = undefined;
      if (backend.ejectedBy === 'passive') this.pool.restore(backend);
    }, intervalMs);
    record.timer.unref();
  }

  private mayEject(): boolean {
    let ejected = 0;
    for (const b of this.pool.backends) if (b.state === 'ejected') ejected++;
    const allowed = Math.floor((this.pool.size * this.config.maxPercent) / 100);
    return ejected + 1 <= Math.max(allowed, this.pool.size > 1 && this.config.maxPercent > 0 ? 1 : 0);
  }

  private forget(backend: Backend): void {
    const record = this.records.get(backend);
    if (record?.timer) clearTimeout(record.timer);
    this.records.delete(backend);
  }

  close(): void {
    for (const r of this.records.values()) if (r.timer) clearTimeout(r.timer);
    this.records.clear();
  }
}
