/** Runs the real gateway entry point as a child process, as operators and outside checks do. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const mainScript = join(process.cwd(), 'dist', 'src', 'main.js');

export function writeConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  return file;
}

export interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runToExit(args: string[], timeoutMs = 20_000): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [mainScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Started {
  child: ChildProcess;
  publicUrl: string;
  adminUrl: string;
  exited: Promise<Exited>;
  output: () => string;
}

/** Starts the gateway and resolves once it printed its listening line. */
export function startGateway(args: string[], timeoutMs = 20_000): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [mainScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let resolveExit: (e: Exited) => void = () => {};
    const exited = new Promise<Exited>((r) => (resolveExit = r));
    child.on('exit', (code) => resolveExit({ code, stdout, stderr }));
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr}`)), timeoutMs);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /listening on (\S+) \(admin (\S+)\)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ child, publicUrl: m[1]!, adminUrl: m[2]!, exited, output: () => stdout + stderr });
      }
    });
    child.on('exit', () => reject(new Error(`gateway exited early: ${stderr}`)));
  });
}
