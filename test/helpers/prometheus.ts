/**
 * A real Prometheus for tests (Debian's `prometheus` binary, which .ci/run installs): one process on a
 * free loopback port, scraping the given targets every second with the target labels a Kubernetes
 * scrape would attach (`namespace`, `pod`), into a temporary TSDB removed on stop. Queries go through
 * the HTTP API, as prometheus-adapter and KEDA send them.
 *
 * The process runs under a small shell watchdog holding the read end of a pipe from this process: when
 * that pipe closes (stop(), or this process dying in any way, SIGKILL included) the watchdog stops
 * Prometheus and removes its files, so a failing or killed test leaves nothing behind. stop() also
 * kills the whole process group if Prometheus does not exit in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as yaml } from 'yaml';
import { freePort, sleep } from '../../bench/lib/procs.js';

export interface ScrapeTarget {
  /** Base URL of the listener that serves `/metrics`, e.g. a gateway's admin URL. */
  readonly url: string;
  /** Target labels added to every scraped series, as Kubernetes service discovery would. */
  readonly labels: Readonly<Record<string, string>>;
}

/** One element of an instant vector. */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/**
 * `sh -c WATCHDOG name DIR prometheus ARGS...`: runs Prometheus, stops it when the shell's stdin (kept
 * as fd 3) reaches end of file, and removes DIR once it exited.
 */
const WATCHDOG = ['dir=$1; shift', 'exec 3<&0', '"$@" 3<&- </dev/null &', 'p=$!', '(read -r _ <&3; kill -TERM "$p" 2>/dev/null) &', 'wait "$p"', 'rm -rf -- "$dir"'].join('\n');

export class Prometheus {
  private exited: Promise<void>;
  private log = '';

  private constructor(
    readonly url: string,
    readonly targets: readonly ScrapeTarget[],
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr?.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    process.once('exit', this.killNow);
  }

  /** Starts Prometheus scraping `targets` every `intervalMs` and resolves once it reports ready. */
  static async start(targets: readonly ScrapeTarget[], intervalMs = 1000): Promise<Prometheus> {
    const binary = process.env.PROMETHEUS ?? 'prometheus';
    for (let attempt = 1; ; attempt++) {
      const dir = mkdtempSync(join(tmpdir(), 'gw-prometheus-'));
      const seconds = `${intervalMs / 1000}s`;
      const config = {
        global: { scrape_interval: seconds, scrape_timeout: seconds, evaluation_interval: seconds },
        scrape_configs: [
          {
            job_name: 'rasa-gateway',
            metrics_path: '/metrics',
            static_configs: targets.map((t) => ({ targets: [new URL(t.url).host], labels: { ...t.labels } })),
          },
        ],
      };
      writeFileSync(join(dir, 'prometheus.yml'), yaml(config));
      const address = `127.0.0.1:${await freePort()}`;
      const args = [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${address}`, '--log.level=warn'];
      const child = spawn('sh', ['-c', WATCHDOG, 'prometheus-watchdog', dir, binary, ...args], { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
      const prom = new Prometheus(`http://${address}`, targets, child, dir);
      try {
        await prom.ready();
        return prom;
      } catch (err) {
        await prom.stop();
        // Another process may have taken the port between freePort() and Prometheus binding it.
        if (attempt < 3 && /address already in use/.test(prom.log)) continue;
        throw err;
      }
    }
  }

  private async ready(timeoutMs = 20_000): Promise<void> {
    let gone = false;
    void this.exited.then(() => (gone = true));
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (gone) throw new Error(`prometheus exited before it was ready (is Debian's prometheus package installed? .ci/run installs it):\n${this.log}`);
      try {
        if ((await fetch(`${this.url}/-/ready`)).status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > until) throw new Error(`prometheus not ready after ${timeoutMs} ms:\n${this.log}`);
      await sleep(50);
    }
  }

  /** Evaluates an instant query (at `time`, in ms since the epoch, or now); anything but a vector fails. */
  async query(promql: string, time?: number): Promise<Sample[]> {
    const params: Record<string, string> = { query: promql };
    if (time !== undefined) params.time = (time / 1000).toFixed(3);
    const data = await this.api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>('/api/v1/query', params);
    if (data.resultType !== 'vector') throw new Error(`${promql}: expected an instant vector, got a ${data.resultType}`);
    return data.result.map((r) => ({ labels: r.metric, value: parseValue(r.value[1]) }));
  }

  /** The label sets of every stored series a selector matches (what prometheus-adapter lists). */
  series(selector: string): Promise<Record<string, string>[]> {
    return this.api('/api/v1/series', { 'match[]': selector });
  }

  /** Every metric name stored so far. */
  metricNames(): Promise<string[]> {
    return this.api('/api/v1/label/__name__/values', {});
  }

  /** Polls `promql` until `check` accepts its result; returns that result. */
  async waitForSamples(what: string, promql: string, check: (samples: Sample[]) => boolean, timeoutMs = 15_000): Promise<Sample[]> {
    const until = Date.now() + timeoutMs;
    let last: Sample[] | string = [];
    for (;;) {
      try {
        last = await this.query(promql);
        if (check(last)) return last;
      } catch (err) {
        last = String(err);
      }
      if (Date.now() > until) {
        throw new Error(`timed out waiting for ${what}: ${promql} last gave ${JSON.stringify(last)}; targets: ${await this.targetHealth()}`);
      }
      await sleep(100);
    }
  }

  /** Waits until every target was scraped successfully by a scrape that started at or after `since`. */
  async waitForScrape(since = Date.now(), timeoutMs = 15_000): Promise<void> {
    await this.waitForSamples(
      `a successful scrape of all ${this.targets.length} targets since ${new Date(since).toISOString()}`,
      'timestamp(up) and on(instance) (up == 1)',
      (samples) => samples.length === this.targets.length && samples.every((s) => s.value * 1000 >= since),
      timeoutMs,
    );
  }

  /** Stops Prometheus (SIGTERM through the watchdog, then SIGKILL of the group) and removes its files. */
  async stop(): Promise<void> {
    this.child.stdin?.end();
    const timer = setTimeout(this.killNow, 5000);
    await this.exited;
    clearTimeout(timer);
    this.killNow();
    process.removeListener('exit', this.killNow);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last resort: kills the watchdog's whole process group (it runs detached, as its leader). */
  private readonly killNow = (): void => {
    try {
      if (this.child.pid !== undefined) process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };

  private async targetHealth(): Promise<string> {
    try {
      const data = await this.api<{ activeTargets: { scrapeUrl: string; health: string; lastError: string }[] }>('/api/v1/targets', {});
      return data.activeTargets.map((t) => `${t.scrapeUrl} ${t.health}${t.lastError ? ` (${t.lastError})` : ''}`).join(', ');
    } catch (err) {
      return String(err);
    }
  }

  private async api<T>(path: string, params: Record<string, string>): Promise<T> {
    const res = await fetch(`${this.url}${path}?${new URLSearchParams(params).toString()}`);
    const body = (await res.json()) as { status: string; data: T; errorType?: string; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  }
}

/** Prometheus writes special values as NaN, +Inf and -Inf. */
function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}
