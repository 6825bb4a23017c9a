/**
 * Progress on the terminal: one live line per scenario (which row, which cell, k of N, elapsed, time
 * left). The time left is the remaining estimate scaled by how the finished part compared with its
 * estimate. On a terminal the line is rewritten in place; in a log, each step is its own line.
 */

export function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

const tty = process.stderr.isTTY === true;

export class Progress {
  private readonly startedMs = performance.now();
  private doneEstimateS = 0;
  private currentEstimateS = 0;
  private step = 0;
  private live = false;

  constructor(
    readonly scenario: string,
    readonly totalSteps: number,
    readonly totalEstimateS: number,
  ) {}

  /** Starts step k of N; `estimateS` is what the plan expected it to take. */
  begin(label: string, estimateS: number): void {
    this.doneEstimateS += this.currentEstimateS;
    this.currentEstimateS = estimateS;
    this.step++;
    const elapsed = (performance.now() - this.startedMs) / 1000;
    const pace = this.doneEstimateS > 0 ? elapsed / this.doneEstimateS : 1;
    const left = Math.max(0, this.totalEstimateS - this.doneEstimateS) * pace;
    this.write(`[${this.scenario}] ${this.step}/${this.totalSteps} ${label} | elapsed ${clock(elapsed)}, left ~${clock(left)}`);
  }

  /** A message that should stay on screen (warnings, skipped rows). */
  log(line: string): void {
    if (this.live) process.stderr.write('\r\x1b[K');
    this.live = false;
    process.stderr.write(`[${this.scenario}] ${line}\n`);
  }

  finish(): void {
    const elapsed = (performance.now() - this.startedMs) / 1000;
    this.log(`done in ${clock(elapsed)} (estimated ${clock(this.totalEstimateS)})`);
  }

  private write(line: string): void {
    if (tty) {
      const width = process.stderr.columns ?? 120;
      process.stderr.write(`\r\x1b[K${line.slice(0, width - 1)}`);
      this.live = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }
}
