/**
 * `scale-from-zero` (issue 18): a pool at zero pods, as KEDA's `minReplicaCount: 0` leaves it. The
 * gateway is the product's process with `kubernetes:` discovery on the project's list+watch API server
 * (bench/lib/kube.ts); a KEDA-like activator polls the gateway's metrics and scales the Deployment
 * 0 -> 1 as soon as `gateway_pool_desired_pods` says a pod is needed; the pod takes `startupMs` to be
 * ready. Ten requests arrive over the first second. Measured with `queue.noPods: wait` and, for
 * contrast, `reject`: every answer's status, when the activator saw demand, when the pod was ready,
 * and the requests' latency (about the pod's startup, which they waited out in the queue).
 */
import type { PoolSettings } from '../lib/gateway.js';
import { startGateways } from '../lib/gateway.js';
import { EmulatedDeployment, FakeApiServer, kubeconfigFile, NAMESPACE } from '../lib/kube.js';
import { markdownTable, writeResults } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { scrape } from '../lib/scrape.js';
import { summarize } from '../lib/stats.js';

const STARTUP_MS = 3000;
const REQUESTS = 10;

interface Run {
  readonly mode: 'wait' | 'reject';
  readonly statuses: Record<string, number>;
  readonly activatedMs: number | undefined;
  readonly readyMs: number | undefined;
  readonly latency: ReturnType<typeof summarize>;
}

async function runMode(api: FakeApiServer, kubeconfig: string, mode: 'wait' | 'reject'): Promise<Run> {
  const service = `rasa-zero-${mode}`;
  const deployment = new EmulatedDeployment({ api, service, pod: { slots: 2, serviceMs: 250 }, startupMs: STARTUP_MS, terminatingMs: 200 });
  const pool: PoolSettings = {
    kubernetes: { namespace: NAMESPACE, service, port: 'http' },
    slotsPerEndpoint: 2,
    queue: { maxLength: 1000, maxWaitMs: 30_000, noPods: mode },
  };
  const gateway = await startGateways({ endpoints: [], pool, env: { KUBECONFIG: kubeconfig } });
  try {
    const start = performance.now();
    let activatedMs: number | undefined;
    // The activator: KEDA polls its trigger and scales 0 -> 1 on a non-zero value.
    const activator = setInterval(() => {
      void scrape(gateway.adminUrls[0] as string).then(
        (s) => {
          if (activatedMs === undefined && s.sum('gateway_pool_desired_pods') >= 1) {
            activatedMs = performance.now() - start;
            void deployment.scale(1);
          }
        },
        () => {},
      );
    }, 250);
    const answers = await Promise.all(
      Array.from({ length: REQUESTS }, async (_, i) => {
        await new Promise((r) => setTimeout(r, (i * 1000) / REQUESTS));
        const t0 = performance.now();
        const res = await fetch(`${gateway.urls[0]}/model/parse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: `zero ${i}` }) });
        await res.arrayBuffer();
        return { status: res.status, ms: performance.now() - t0 };
      }),
    );
    clearInterval(activator);
    const statuses: Record<string, number> = {};
    for (const a of answers) statuses[String(a.status)] = (statuses[String(a.status)] ?? 0) + 1;
    const ready = deployment.pods[0]?.readyMs;
    return { mode, statuses, activatedMs, readyMs: ready === undefined ? undefined : ready - start, latency: summarize(answers.map((a) => a.ms)) };
  } finally {
    await gateway.stop();
    await deployment.scale(0, 0);
  }
}

const ms = (v: number | undefined) => (v === undefined ? '-' : String(Math.round(v)));

export const scaleFromZero: Scenario = {
  name: 'scale-from-zero',
  title: 'a pool at zero pods: requests wait in the queue while the first pod starts (queue.noPods: wait) vs 503 at once',
  async prepare(options, log) {
    return {
      estimateS: 20,
      plan: `10 requests over 1 s to an empty pool; an activator scales 0 -> 1 on gateway_pool_desired_pods; pod startup ${STARTUP_MS} ms`,
      async run() {
        const api = await FakeApiServer.start();
        try {
          const kubeconfig = kubeconfigFile(api);
          const runs = [await runMode(api, kubeconfig, 'wait'), await runMode(api, kubeconfig, 'reject')];
          for (const r of runs) log(`${r.mode}: ${JSON.stringify(r.statuses)}, activated ${ms(r.activatedMs)} ms, ready ${ms(r.readyMs)} ms`);
          const table = {
            header: ['queue.noPods', 'answers by status', 'activator saw demand (ms)', 'pod ready (ms)', 'latency p50 (ms)', 'latency max (ms)'],
            rows: runs.map((r) => [r.mode, JSON.stringify(r.statuses), ms(r.activatedMs), ms(r.readyMs), ms(r.latency.p50), ms(r.latency.max)]),
          };
          const md = [
            '# Scale from zero',
            '',
            `A pool at zero pods; ${REQUESTS} POST /model/parse over the first second; a KEDA-like activator polls the gateway's`,
            '/metrics every 250 ms and scales the emulated Deployment 0 -> 1 once `gateway_pool_desired_pods` >= 1; the pod is ready',
            `${STARTUP_MS} ms after it is created. Discovery: EndpointSlices on the project's list+watch API server. Times from the first request.`,
            'One run on a shared 2-core machine.',
            '',
            `Command: \`${benchCommand('scale-from-zero', options)}\``,
            '',
            markdownTable(table),
          ].join('\n');
          process.stdout.write(`\n${markdownTable(table)}\n`);
          const files = writeResults({ scenario: 'scale-from-zero', outDir: options.outDir, json: runs, markdown: md, charts: [] });
          log(`wrote ${files.join(', ')}`);
        } finally {
          await api.close();
        }
      },
    };
  },
};
