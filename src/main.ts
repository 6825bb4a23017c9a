#!/usr/bin/env node
/**
 * Entry point: config -> gateway -> listen; SIGTERM/SIGINT drain and exit 0; bad config exits 2.
 * `rasa-gateway plan ...` is the capacity planner (src/capacity/plan-cli.ts) and starts no gateway.
 */
import { ConfigError, loadConfig, usage } from './config.js';
import { Gateway } from './gateway.js';

async function main(): Promise<void> {
  if (process.argv[2] === 'plan') {
    const { runPlan } = await import('./capacity/plan-cli.js');
    process.exitCode = await runPlan(process.argv.slice(3), process.stdout, process.stderr);
    return;
  }
  let cli;
  try {
    cli = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`rasa-gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (cli.help || !cli.config) {
    process.stdout.write(usage);
    return;
  }
  if (cli.check) {
    process.stdout.write(`${JSON.stringify(cli.config, (k, v) => (v === Infinity ? 'unlimited' : k === 'token' || k === 'jwtSecret' ? '(redacted)' : v), 2)}\n`);
    return;
  }
  const gateway = await Gateway.create(cli.config);
  // The last resort, not the defence: every step of the request path has its own error boundary
  // (proxy/request-context.ts). Anything that still escapes is logged and counted, and the process
  // keeps serving every other conversation rather than dropping them all.
  const escaped = (kind: string) => (err: unknown) => {
    gateway.metrics.internalError('none', 'process');
    process.stderr.write(`rasa-gateway: ${kind} (kept serving): ${err instanceof Error ? err.stack : String(err)}\n`);
  };
  process.on('uncaughtException', escaped('uncaught exception'));
  process.on('unhandledRejection', escaped('unhandled rejection'));
  const { publicUrl, adminUrl } = await gateway.start();
  process.stdout.write(`rasa-gateway listening on ${publicUrl} (admin ${adminUrl})\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`rasa-gateway: ${signal}, draining for up to ${cli.config?.shutdown.drainTimeoutMs} ms\n`);
    gateway.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`rasa-gateway: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`rasa-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
