/**
 * A background job that runs every `periodMs`, one run at a time (the next is timed from the end of
 * the last, so a slow API server never stacks runs up), and whose stop waits, bounded, for the run
 * in progress: the Lease election and the pod-deletion-cost writer are both such loops. Timers are
 * unref'd: a background loop must not keep a process alive that has nothing else to do.
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  /** `run` must not throw (a rejection is ignored, the loop goes on). */
  constructor(
    private readonly run: () => Promise<void>,
    private readonly periodMs: number,
  ) {}

  start(delayMs = 0): void {
    if (this.stopped || this.timer || this.current) return;
    this.schedule(delayMs);
  }

  /** Runs now instead of at the end of the period (or right after the run in progress). */
  soon(): void {
    if (this.stopped) return;
    if (this.current) {
      this.again = true;
    } else if (this.timer) {
      clearTimeout(this.timer);
      this.schedule(0);
    }
  }

  /** No further runs; resolves once the run in progress has ended, or after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.current) await settleWithin(this.current, timeoutMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const run = this.run().catch(() => undefined);
      this.current = run;
      void run.finally(() => {
        if (this.current === run) this.current = undefined;
        const next = this.again ? 0 : this.periodMs;
        this.again = false;
        this.schedule(next);
      });
    }, delayMs);
    this.timer.unref();
  }
}

/** Waits for `promise` to settle, but no longer than `ms`, and never throws (bounded shutdown steps). */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.then(() => undefined, () => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
