/**
 * Child processes the bench starts (gateway, nginx, HAProxy, wrk, the trivial upstream): spawn with
 * logs to a file, optional CPU pinning, wait for a line or a URL, stop by pid (SIGTERM, then SIGKILL),
 * and read CPU time from /proc. Every process started here is stopped on exit, even after a crash.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Set<ChildProcess>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const killAll = () => {
    for (const child of live) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

let workDir: string | undefined;

/** One temp dir per bench run for generated configs and logs; removed at exit unless BENCH_KEEP_TMP. */
export function benchTmp(sub: string): string {
  if (!workDir) {
    workDir = mkdtempSync(join(tmpdir(), 'rasa-gateway-bench-'));
    if (!process.env.BENCH_KEEP_TMP) {
      const dir = workDir;
      process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    }
  }
  let n = 0;
  let dir = join(workDir, sub);
  while (existsSync(dir)) dir = join(workDir, `${sub}-${++n}`);
  return dir;
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Output so far (stdout and stderr), for error messages. */
  output(): string;
  /** The last 8 KiB of its stderr (a crash's stack trace), however much it wrote before. */
  stderrTail(): string;
  /** Resolves with the first output line matching `re` or rejects on exit/timeout. */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  readonly cpus?: string;
  readonly cwd?: string;
  readonly logFile: string;
  /** Added to this process's environment (e.g. KUBECONFIG). */
  readonly env?: Readonly<Record<string, string>>;
}

export function hasCommand(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin'])) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** taskset's core list, when taskset exists and the machine has that many cores; else run unpinned. */
function pinned(cmd: string, args: readonly string[], cpus: string | undefined): [string, string[]] {
  const taskset = cpus ? hasCommand('taskset') : undefined;
  return taskset ? [taskset, ['-c', cpus as string, cmd, ...args]] : [cmd, [...args]];
}

export function startProcess(cmd: string, args: readonly string[], options: SpawnOptions): Proc {
  hookExit();
  const [file, argv] = pinned(cmd, args, options.cpus);
  const child = spawn(file, argv, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], ...(options.env ? { env: { ...process.env, ...options.env } } : {}) });
  live.add(child);
  const log = createWriteStream(options.logFile);
  let text = '';
  const watchers: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onData = (chunk: Buffer) => {
    log.write(chunk);
    if (text.length < 64_000) text += chunk.toString('utf8');
    for (const w of [...watchers]) {
      const m = text.match(w.re);
      if (m) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  let errTail = '';
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.stderr?.on('data', (chunk: Buffer) => {
    errTail = (errTail + chunk.toString('utf8')).slice(-8192);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      log.end();
      resolve(code);
    });
    child.once('error', (err) => {
      text += `\n${err.message}`;
      live.delete(child);
      resolve(-1);
    });
  });
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    logFile: options.logFile,
    output: () => text,
    stderrTail: () => errTail,
    exited,
    waitFor(re, timeoutMs) {
      const m = text.match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${cmd}; output: ${tail(text)}`)), timeoutMs);
        watchers.push({
          re,
          resolve: (match) => {
            clearTimeout(timer);
            resolve(match);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${cmd} exited (code ${code}) before ready; output: ${tail(text)}`));
        });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.pid === undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  return proc;
}

export function tail(text: string, n = 600): string {
  const t = text.trim();
  return t.length > n ? `...${t.slice(-n)}` : t || '(none)';
}

/** Runs a command to completion (for wrk, apt-get, version probes). */
export function runSync(cmd: string, args: readonly string[], timeoutMs = 600_000): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

/** Runs a command to completion without blocking the event loop (pods keep answering meanwhile). */
export async function runAsync(cmd: string, args: readonly string[], options: { cpus?: string; logFile: string }): Promise<{ code: number | null; out: string }> {
  const p = startProcess(cmd, args, options);
  const code = await p.exited;
  return { code, out: p.output() };
}

/** A TCP port that was free a moment ago on 127.0.0.1 (for peers that cannot report their own). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Calls `fn` every `intervalMs` (drift-free: on a fixed grid from the start; a slow call skips the
 * ticks it overran, never overlaps). `stop()` resolves once the call in progress, if any, ended.
 */
export function periodic(intervalMs: number, fn: (tick: number) => Promise<void> | void): { stop(): Promise<void> } {
  const t0 = performance.now();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const schedule = (tick: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = (async () => {
        try {
          await fn(tick);
        } catch (err) {
          process.stderr.write(`periodic task failed: ${(err as Error).message}\n`);
        }
      })();
      void running.then(() => schedule(Math.max(tick + 1, Math.ceil((performance.now() - t0) / intervalMs))));
    }, Math.max(0, t0 + tick * intervalMs - performance.now()));
  };
  schedule(0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** Polls a URL until it answers 200 (readiness) or the time is up. */
export async function waitHttpOk(url: string, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc && proc.child.exitCode !== null) throw new Error(`process exited before ${url} was ready; output: ${tail(proc.output())}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      last = `HTTP ${res.status}`;
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

const clockTicks = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU seconds (user + system) used so far by a process and all its descendants; NaN without /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const stats = new Map<number, { ppid: number; ticks: number }>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const raw = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
        stats.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
      } catch {
        // the process ended while we looked
      }
    }
    let ticks = 0;
    const todo = [pid];
    while (todo.length > 0) {
      const p = todo.pop() as number;
      ticks += stats.get(p)?.ticks ?? 0;
      for (const [child, s] of stats) if (s.ppid === p) todo.push(child);
    }
    return ticks / clockTicks;
  } catch {
    return NaN;
  }
}

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...) in bytes; NaN without /proc or the field. */
export function procStatusBytes(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** How many cores this process may run on (CPU pinning needs at least two). */
export function coreCount(): number {
  const r = runSync('nproc', []);
  const n = Number(r.out.trim());
  return Number.isFinite(n) && n > 0 ? n : 1;
}
