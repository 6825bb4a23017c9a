/**
 * The config file's schema: every key's type, allowed values, default and meaning (`description`),
 * declared once. src/config.ts validates documents against it and derives the runtime config; the
 * section types it exports come from these declarations (`Static`); the README table is tested
 * against it (test/readme-contract.test.ts).
 *
 * Why @sinclair/typebox: one declaration is both JSON Schema (the language fastify speaks) and the
 * TypeScript type, and `Value.Default`/`Value.Errors` fill defaults and report each failure with its
 * JSON pointer and the failing sub-schema, which is all config.ts needs to name the field and say what
 * is allowed; ajv would add a second schema dialect and a code generator for no better error.
 *
 * Two keywords of our own, ignored by validators: `must` (how an error says what is allowed, when the
 * generic wording would say less) and `keyMust` (the same for the keys of a mapping of names).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** The `balancer` values; balancer/registry.ts maps each to its implementation (the compiler checks both agree). */
export const balancerNames = ['round-robin', 'random', 'least-outstanding', 'p2c', 'peak-ewma'] as const;
export type BalancerName = (typeof balancerNames)[number];
/** The `dispatch` values (admission/admission.ts). */
export const dispatchModes = ['greedy', 'earliest-completion'] as const;
export type DispatchMode = (typeof dispatchModes)[number];
export const jwtAlgorithms = ['HS256', 'HS384', 'HS512'] as const;
export type JwtAlgorithm = (typeof jwtAlgorithms)[number];

const HOUR_MS = 3_600_000;
const MiB = 1024 * 1024;

function int(minimum: number, maximum: number, description: string, defaultValue?: number) {
  return Type.Integer({ minimum, maximum, description, ...(defaultValue !== undefined ? { default: defaultValue } : {}) });
}

function oneOf<const T extends readonly string[]>(values: T, description: string, defaultValue?: T[number]) {
  return Type.Union(
    values.map((v) => Type.Literal(v as T[number])),
    { description, ...(defaultValue !== undefined ? { default: defaultValue } : {}) },
  );
}

const text = (description: string, defaultValue?: string) =>
  Type.String({ minLength: 1, description, ...(defaultValue !== undefined ? { default: defaultValue } : {}) });

const absolutePath = (description: string, defaultValue?: string) =>
  Type.String({ pattern: '^/', must: 'start with /', description, ...(defaultValue !== undefined ? { default: defaultValue } : {}) });

/** A mapping of fixed keys; unknown keys are refused. With `defaults`, an absent section is `{}` filled with its keys' defaults. */
function section<T extends Record<string, TSchema>>(properties: T, description: string, defaults = true) {
  return Type.Object(properties, { additionalProperties: false, description, ...(defaults ? { default: {} } : {}) });
}

export function listenSchema(port: number, description: string, defaults = true) {
  return section(
    { host: text('bind address', '0.0.0.0'), port: int(0, 65535, 'TCP port; 0 picks a free port', port) },
    description,
    defaults,
  );
}

export const kubernetesSchema = section(
  {
    namespace: text('namespace of the Service', 'default'),
    service: text('the Service whose EndpointSlices list the pods'),
    port: Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1, maximum: 65535 })], {
      description: 'Service port name (e.g. `http`) or container port number, resolved per slice',
      must: 'be a port name such as http or a number from 1 to 65535',
    }),
  },
  'discover the pods from the EndpointSlices of a Service',
  false,
);

export const staticEndpointSchema = section(
  {
    url: text('origin of the pod, e.g. http://10.0.0.5:5005'),
    name: Type.Optional(text('pod name shown in /debug and the status page')),
    zone: Type.Optional(text('zone shown in /debug and the status page')),
  },
  'a static endpoint with its pod name and zone',
  false,
);

export const retrySchema = section(
  {
    budgetPercent: int(0, 100, 'retries allowed as a share of recent requests (Envoy/linkerd retry budgets)', 20),
    minPerSecond: int(0, 10_000, 'retries always allowed per second, so a quiet pool can still retry', 3),
  },
  'retry budget (see Resilience)',
);

export const ejectionSchema = section(
  {
    consecutiveFailures: int(0, 1000, 'consecutive failures (connect errors, resets, timeouts, 5xx) that eject a pod; 0: never', 5),
    baseMs: int(100, HOUR_MS, 'first ejection time; it grows with each ejection of the same pod', 10_000),
    maxMs: int(100, 24 * HOUR_MS, 'longest ejection time; at least baseMs (raised to baseMs when absent)', 300_000),
    maxPercent: int(0, 100, 'never eject more than this share of the pool at once', 50),
  },
  'passive ejection; `consecutiveFailures: 0` turns it off',
);

export const healthCheckSchema = section(
  {
    path: absolutePath('path probed on each pod', '/'),
    intervalMs: int(100, HOUR_MS, 'time between probes of a pod', 5000),
    timeoutMs: int(10, 600_000, 'a probe slower than this fails', 2000),
    unhealthyThreshold: int(1, 100, 'failed probes in a row that take a pod out', 3),
    healthyThreshold: int(1, 100, 'passed probes in a row that bring it back', 2),
  },
  'active health checks (off when absent)',
  false,
);

export const cacheSchema = section(
  {
    maxEntries: int(1, 100_000_000, 'cached parse results', 10_000),
    maxBytes: int(1024, 64 * 1024 * MiB, 'bytes of cached parse results', 64 * MiB),
    ttlMs: int(1000, 30 * 24 * HOUR_MS, 'age after which a result is parsed again', 600_000),
    modelPollMs: int(100, HOUR_MS, 'how often the loaded model is checked (a new model empties the cache)', 10_000),
  },
  'NLU parse cache and coalescing for `POST /model/parse` (off when absent)',
  false,
);

export const rasaAuthSchema = section(
  {
    token: Type.Optional(text('Rasa token inline (tests only)')),
    tokenEnv: Type.Optional(text('environment variable holding the Rasa token')),
    jwtSecret: Type.Optional(text('JWT secret inline (tests only)')),
    jwtSecretEnv: Type.Optional(text('environment variable holding the JWT secret')),
    jwtAlgorithm: oneOf(jwtAlgorithms, 'JWT signing algorithm', 'HS256'),
  },
  'how Rasa authenticates callers: lets the gateway verify them itself (cache) and call /status',
);

export const deletionCostSchema = section(
  {
    enabled: Type.Boolean({ default: false, description: 'write the annotations (needs `kubernetes:` discovery)' }),
    intervalMs: int(100, HOUR_MS, 'how often the lease holder recomputes and writes the annotations', 10_000),
    leaseName: Type.String({
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
      maxLength: 253,
      must: 'be a DNS subdomain name: lowercase letters, digits, - and .',
      default: 'rasa-gateway-deletion-cost',
      description: 'the Lease that elects the one replica writing annotations',
    }),
    leaseNamespace: Type.Optional(
      Type.String({
        pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
        maxLength: 63,
        must: 'be a namespace name: lowercase letters, digits and -',
        description: "namespace of the Lease; absent: POD_NAMESPACE (the gateway's own), else the pool's namespace",
      }),
    ),
    leaseDurationSeconds: int(1, 3600, 'lease duration', 30),
    minChange: int(1, 1_000_000, "rewrite a pod's annotation only when its cost moved by at least this much (or fell to 0)", 1),
  },
  'keep `controller.kubernetes.io/pod-deletion-cost` on the pods near their live conversations',
);

export const capacitySchema = section(
  {
    targetQueueWaitMs: int(1, HOUR_MS, 'the p95 queue wait the desired pod count keeps to at the measured rate and service time', 500),
    horizonMs: int(1000, 24 * HOUR_MS, 'a backlog beyond the steady-state queue is to be drained within this time', 60_000),
    windowMs: int(1000, HOUR_MS, 'the sliding window of the arrival rate; service times are measured over ten of them', 30_000),
  },
  'capacity planning: the pods this pool needs (`gateway_pool_desired_pods`, status page, `/debug/capacity`)',
);

export const poolSchema = section(
  {
    endpoints: Type.Optional(
      Type.Array(Type.Union([Type.String({ minLength: 1 }), staticEndpointSchema], { must: 'be a URL such as http://10.0.0.5:5005 or { url, name, zone }' }), {
        must: 'be a list of URLs or { url, name, zone }',
        description: 'static discovery: the pods, as origins or { url, name, zone } (this or `kubernetes`)',
      }),
    ),
    kubernetes: Type.Optional(kubernetesSchema),
    balancer: oneOf(balancerNames, 'how a free slot is chosen when several pods have one', 'least-outstanding'),
    slotsPerEndpoint: Type.Union([Type.Integer({ minimum: 1, maximum: 100_000 }), Type.Literal('auto'), Type.Literal('unlimited')], {
      default: 2,
      description: 'requests a pod runs at once; the rest wait in the queue. `unlimited`: no queue; `auto`: learned per pod',
    }),
    minSlots: int(1, 10_000, 'with `slotsPerEndpoint: auto`: fewest slots a pod is given, and what a new pod starts with', 1),
    maxSlots: int(1, 10_000, 'with `slotsPerEndpoint: auto`: most slots a pod is given (at least minSlots)', 16),
    dispatch: oneOf(
      dispatchModes,
      'earliest-completion: each waiter to the slot that finishes it first; greedy: the first free slot (the default with `unlimited` slots)',
      'earliest-completion',
    ),
    queue: section(
      {
        maxLength: int(0, 10_000_000, 'waiting requests; beyond: 503 QUEUE_FULL at once', 1000),
        maxWaitMs: int(1, HOUR_MS, 'longest wait for a slot; beyond: 503 QUEUE_TIMEOUT', 30_000),
        noPods: oneOf(
          ['reject', 'wait'] as const,
          'with no pod taking work: `reject` answers 503 NO_ENDPOINTS at once; `wait` holds requests in the queue (up to maxWaitMs) for the first pod (scale from zero, upstream outages)',
          'reject',
        ),
      },
      "the pool's central queue",
    ),
    upstreamTimeoutMs: int(1, HOUR_MS, "per attempt: time to the pod's response headers, and between body chunks", 60_000),
    affinity: oneOf(['none', 'rasa'] as const, '`rasa`: conversation stickiness', 'none'),
    sessions: section(
      {
        maxEntries: int(1, 100_000_000, 'conversations remembered', 100_000),
        idleTtlMs: int(1000, 7 * 24 * HOUR_MS, 'a conversation idle this long is forgotten', HOUR_MS),
      },
      'the sticky table of this replica',
    ),
    ordering: oneOf(['webhooks', 'all', 'none'] as const, 'one request in flight per conversation: on webhook routes, on every keyed route, or off', 'webhooks'),
    bodyLimitBytes: int(1024, 1024 * MiB, 'largest request body; bodies are read before a slot is taken', MiB),
    retry: retrySchema,
    ejection: ejectionSchema,
    healthCheck: Type.Optional(healthCheckSchema),
    slowStartMs: int(0, HOUR_MS, 'a pod joining a running pool ramps from 1 slot to all over this window (0: off)', 30_000),
    cache: Type.Optional(cacheSchema),
    rasaAuth: rasaAuthSchema,
    deletionCost: deletionCostSchema,
    capacity: capacitySchema,
  },
  'an upstream pool: its pods, how requests are admitted and balanced',
  false,
);

/** Replica-to-replica traffic (src/cluster/): who the peers are, how fast a lost one is noticed. */
export const clusterSchema = section(
  {
    listen: listenSchema(9095, 'the cluster listener (replica-to-replica traffic; keep it internal); a fixed port, peers dial it'),
    advertise: Type.Optional(text('how peers reach this replica, e.g. http://10.1.2.3:9095; absent: http://$POD_IP:<listen port>, else the hostname')),
    peers: Type.Optional(
      Type.Array(text('a replica, e.g. http://10.1.2.3:9095'), {
        minItems: 1,
        must: 'be a non-empty list of URLs such as http://10.1.2.3:9095',
        description: 'static membership: every replica\'s advertise URL, this one included (this or `kubernetes`)',
      }),
    ),
    kubernetes: Type.Optional(
      section(
        {
          namespace: Type.Optional(text("namespace of the Service; absent: POD_NAMESPACE (the gateway's own), else `default`")),
          service: text("the gateway's own headless Service; its EndpointSlices list the replicas"),
          port: Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1, maximum: 65535 })], {
            description: 'the cluster port: a Service port name (e.g. `cluster`) or a number',
            must: 'be a port name such as cluster or a number from 1 to 65535',
          }),
          leaseDurationSeconds: int(1, 3600, 'per pool, a Lease elects the scheduler; a crashed scheduler is replaced after this long', 5),
        },
        'Kubernetes membership: the replicas from the EndpointSlices of a headless Service, one scheduler per pool by Lease (this or `peers`)',
        false,
      ),
    ),
    heartbeatMs: int(10, 60_000, 'how often each replica sends a heartbeat on every link', 250),
    deadAfterMs: int(40, 600_000, 'a peer not heard from for this long is dead; at least 4 x heartbeatMs', 2000),
    prefetchGrants: int(
      0,
      16,
      "per pool, slots a replica holds in advance from the scheduler while the pool has free slots and nobody waits, so a request without a conversation starts without the grant's round trip; taken back as soon as a request waits (0: off)",
      1,
    ),
    takeoverWaitMs: Type.Optional(
      int(
        0,
        600_000,
        "after the scheduler is lost without handing over (killed, or its link closed), how long the replica taking over grants nothing: the lost scheduler's own requests still run in the pods (absent: deadAfterMs / 2; 0: at once, and a pod may run more than its slots until they end)",
      ),
    ),
  },
  'replicas share one queue per pool (see Replicas and the cluster); absent: this replica works alone',
  false,
);

export const httpMethods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

export const routeSchema = section(
  {
    path: Type.Optional(absolutePath('exact path matched (this or `prefix`)')),
    prefix: Type.Optional(absolutePath('path prefix matched; the longest wins')),
    pool: text('the pool serving the route'),
    methods: Type.Optional(
      Type.Array(oneOf(httpMethods, 'an HTTP method'), { must: `be a list of ${httpMethods.join(', ')}`, description: 'methods allowed (default all); others get 405' }),
    ),
    deadlineMs: Type.Optional(int(1, HOUR_MS, 'queue wait + upstream, end to end; past it: 504 DEADLINE_EXCEEDED')),
    bodyLimitBytes: Type.Optional(int(0, 1024 * MiB, "overrides the pool's bodyLimitBytes (e.g. larger for /model/train)")),
  },
  'a route: a path or prefix served by a pool',
  false,
);

export const limitsSchema = section(
  {
    headersTimeoutMs: int(100, 600_000, 'slow clients: complete headers within this (408 otherwise, no slot held)', 10_000),
    requestTimeoutMs: int(100, HOUR_MS, 'slow clients: the whole request, body included, within this', 60_000),
    maxHeaderBytes: int(1024, MiB, 'larger headers get 431', 16 * 1024),
    maxHeadersCount: int(10, 10_000, 'more headers than this get 431', 100),
  },
  'slow or oversized clients get 408 / 431',
);

export const gatewaySchema = section(
  {
    listen: listenSchema(8080, 'the public listener'),
    admin: listenSchema(9090, 'the admin listener: /metrics, /healthz, /readyz, /debug/pools, status page'),
    internal: Type.Optional(listenSchema(8081, 'in-cluster listener serving every route, protected ones included, plus model fan-out (off when absent)', false)),
    publicRoutes: Type.Array(absolutePath('a protected Rasa route allowed on the public listener'), {
      default: [],
      must: 'be a list of paths such as /conversations/* or /status',
      description: 'protected Rasa routes allowed on the public listener: exact paths or prefixes ending in *',
    }),
    limits: limitsSchema,
    shutdown: section({ drainTimeoutMs: int(0, HOUR_MS, 'SIGTERM: readiness fails, in-flight and queued requests get this long to finish', 30_000) }, 'draining on SIGTERM'),
    log: section({ level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'log level', 'info') }, 'logging'),
    pools: Type.Record(Type.String({ pattern: '^[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?$' }), poolSchema, {
      additionalProperties: false,
      keyMust: 'pool names use letters, digits, - and _ (they become metric labels)',
      description: 'the upstream pools by name',
    }),
    cluster: Type.Optional(clusterSchema),
    routes: Type.Optional(
      Type.Array(routeSchema, {
        minItems: 1,
        must: 'be a non-empty list of { path | prefix, pool }',
        description: 'first exact `path`, else the longest `prefix`; default with one pool: everything to it',
      }),
    ),
  },
  'the gateway configuration file',
  false,
);

/** A validated section, defaults filled in. */
export type Section<T extends TSchema> = Readonly<Static<T>>;
export type GatewayDocument = Static<typeof gatewaySchema>;
export type PoolDocument = Static<typeof poolSchema>;
export type RouteDocument = Static<typeof routeSchema>;
