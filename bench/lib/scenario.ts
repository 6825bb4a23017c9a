/** What every scenario file exports, and the options `run.ts` passes down. */

export interface BenchOptions {
  readonly quick: boolean;
  /** Overrides the scenario's repeat count. */
  readonly repeats?: number;
  /** Only these row ids (ideal rows are always kept). */
  readonly rows?: readonly string[];
  /** May the bench apt-get install nginx, HAProxy and wrk when missing. */
  readonly install: boolean;
  readonly outDir: string;
  /** Another built checkout of the project: every gateway row also runs on its dist/src/main.js (baseline.ts). */
  readonly baseline?: string;
}

/** The command line that reproduces a scenario run with these options, for the result files. */
export function benchCommand(scenario: string, options: BenchOptions): string {
  const flags = [
    options.quick ? ' --quick' : '',
    options.rows ? ` --rows ${options.rows.join(',')}` : '',
    options.repeats !== undefined ? ` --repeats ${options.repeats}` : '',
    options.baseline ? ` --baseline ${options.baseline}` : '',
  ];
  return `npm run bench -- ${scenario}${flags.join('')}`;
}

export interface Prepared {
  /** Seconds the plan is expected to take. */
  readonly estimateS: number;
  /** One line on what will run (cells, rows, repeats). */
  readonly plan: string;
  run(): Promise<void>;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  prepare(options: BenchOptions, log: (line: string) => void): Promise<Prepared>;
}
