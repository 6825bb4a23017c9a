/**
 * The peers the gateway is compared with, from Debian's packages: nginx (`least_conn`, no queue in
 * the open-source build) and HAProxy (`leastconn`, and `maxconn` per server + its queue: the greedy
 * central queue). Each runs with one worker/thread, like one gateway process, from a config generated
 * into a temp dir. `findTool` finds a binary or installs its package with apt-get (root only) and
 * says why when it cannot; a missing peer turns its rows into "n/a" instead of stopping the bench.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchTmp, freePort, hasCommand, runSync, startProcess, waitHttpOk, type Proc } from './procs.js';

export type Tool = 'nginx' | 'haproxy' | 'wrk';

const aptPackage: Record<Tool, string> = { nginx: 'nginx-light', haproxy: 'haproxy', wrk: 'wrk' };

export interface ToolStatus {
  readonly ok: boolean;
  readonly path?: string;
  readonly version?: string;
  /** What happened: found, installed, or why it is unavailable. */
  readonly note: string;
}

const found = new Map<Tool, ToolStatus>();
let aptUpdated = false;

function version(tool: Tool, path: string): string {
  const r = runSync(path, ['-v'], 10_000);
  const line = r.out.split('\n').find((l) => (tool === 'wrk' ? /^wrk \d/ : /version/i).test(l)) ?? r.out.split('\n')[0] ?? '';
  return line.replace(/^nginx version: /, '').replace(/ - https?:.*$/, '').replace(/ Copyright.*$/, '').trim();
}

export function findTool(tool: Tool, options: { install: boolean; log: (line: string) => void }): ToolStatus {
  const cached = found.get(tool);
  if (cached) return cached;
  let status: ToolStatus;
  let path = hasCommand(tool);
  if (path) {
    status = { ok: true, path, version: version(tool, path), note: `found ${path}` };
  } else if (!options.install) {
    status = { ok: false, note: `${tool} not found and --no-install given (apt-get install -y ${aptPackage[tool]})` };
  } else if (process.getuid?.() !== 0 || !hasCommand('apt-get')) {
    status = { ok: false, note: `${tool} not found; cannot install it (needs root and apt-get: apt-get install -y ${aptPackage[tool]})` };
  } else {
    options.log(`${tool}: not found, installing Debian package ${aptPackage[tool]} with apt-get ...`);
    const env = ['DEBIAN_FRONTEND=noninteractive'];
    let r = runSync('env', [...env, 'apt-get', 'install', '-y', '-qq', aptPackage[tool]]);
    if (!r.ok && !aptUpdated) {
      aptUpdated = true;
      runSync('apt-get', ['update', '-qq']);
      r = runSync('env', [...env, 'apt-get', 'install', '-y', '-qq', aptPackage[tool]]);
    }
    path = hasCommand(tool);
    status = path
      ? { ok: true, path, version: version(tool, path), note: `installed ${aptPackage[tool]} with apt-get` }
      : { ok: false, note: `${tool} not found and apt-get install ${aptPackage[tool]} failed: ${r.out.trim().split('\n').slice(-2).join(' ')}` };
  }
  found.set(tool, status);
  options.log(`${tool}: ${status.ok ? `${status.version} (${status.note})` : `unavailable: ${status.note}`}`);
  return status;
}

export interface Peer {
  readonly url: string;
  readonly proc: Proc;
  stop(): Promise<void>;
}

function hostPort(origin: string): string {
  return new URL(origin).host;
}

async function startPeer(tool: 'nginx' | 'haproxy', dir: string, args: string[], port: number, cpus: string | undefined): Promise<Peer> {
  const status = found.get(tool);
  if (!status?.ok || !status.path) throw new Error(`${tool} unavailable: ${status?.note ?? 'not looked for'}`);
  const proc = startProcess(status.path, args, { logFile: join(dir, `${tool}.log`), ...(cpus ? { cpus } : {}) });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHttpOk(`${url}/version`, 10_000, proc);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { url, proc, stop: () => proc.stop() };
}

export interface NginxOptions {
  readonly endpoints: readonly string[];
  readonly method: 'least_conn' | 'round-robin';
  readonly cpus?: string;
}

export function nginxConfig(dir: string, port: number, o: NginxOptions): string {
  const servers = o.endpoints.map((e) => `    server ${hostPort(e)} max_fails=0;`).join('\n');
  return `daemon off;
master_process on;
worker_processes 1;
${process.getuid?.() === 0 ? 'user root root;\n' : ''}pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  upstream pods {
${o.method === 'least_conn' ? '    least_conn;\n' : ''}${servers}
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://pods;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
`;
}

export async function startNginx(o: NginxOptions): Promise<Peer> {
  const dir = benchTmp('nginx');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, port, o));
  return startPeer('nginx', dir, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], port, o.cpus);
}

export interface HaproxyOptions {
  readonly endpoints: readonly string[];
  readonly balance: 'leastconn' | 'roundrobin';
  /** Requests in flight per server; the rest wait in HAProxy's queue. Undefined: no limit, no queue. */
  readonly maxconn?: number;
  readonly cpus?: string;
}

export function haproxyConfig(port: number, o: HaproxyOptions): string {
  const servers = o.endpoints.map((e, i) => `  server p${i} ${hostPort(e)}${o.maxconn ? ` maxconn ${o.maxconn}` : ''}`).join('\n');
  return `global
  maxconn 8000
  nbthread 1
defaults
  mode http
  maxconn 8000
  option http-keep-alive
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout queue 300s
  timeout http-keep-alive 65s
frontend fe
  bind 127.0.0.1:${port}
  default_backend pods
backend pods
  balance ${o.balance}
${servers}
`;
}

export async function startHaproxy(o: HaproxyOptions): Promise<Peer> {
  const dir = benchTmp('haproxy');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(conf, haproxyConfig(port, o));
  return startPeer('haproxy', dir, ['-db', '-f', conf], port, o.cpus);
}
