/**
 * NLU parse cache and request coalescing for `POST /model/parse`. Chatbot traffic repeats itself
 * ("hi", "yes", button payloads), and the same model gives the same parse for the same text, so a
 * repeat need not cost a transformer inference. Safety rules:
 * - the key is the model that answers (all working pods must agree, see ModelWatcher) plus the
 *   request's meaningful content: the body without `message_id`, and the query without `token`;
 * - only callers whose credentials the gateway verifies as Rasa would are served from it or joined
 *   to a flight (rasa-auth.ts); `Cache-Control: no-cache` bypasses it; only 200s are stored, and
 *   only when the pod that answered runs the agreed model;
 * - identical requests in flight at once share one upstream request (single flight). The flight is
 *   the gateway's own request, holding a slot like any other, so a caller that disconnects only
 *   stops waiting: the others still get their copy.
 * Bounded by lru-cache in entries and bytes, with a TTL.
 */
import { LRUCache } from 'lru-cache';
import type { Lease } from '../admission/lease.js';
import { ScheduledTicket, type Scheduler } from '../scheduling/scheduler.js';
import type { CacheConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import type { Outcome, Pool } from '../pool/pool.js';
import { classifyUpstreamError } from '../pool/upstream-failure.js';
import type { ModelWatcher } from './model-watcher.js';
import { callerVerified, type RasaAuth } from './rasa-auth.js';

export interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
  readonly pod: string;
}

export type CacheDecision = { key: string } | { bypass: 'no_cache' | 'unverified' | 'model_unknown' | 'not_parseable' };

export interface ParseRequest {
  readonly url: string;
  readonly cacheControl: string | undefined;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly body: Buffer;
  readonly deadlineMs: number;
}

export class ParseCache {
  private readonly entries: LRUCache<string, Answer>;
  private readonly flights = new Map<string, Promise<Answer>>();

  constructor(
    config: CacheConfig,
    private readonly pool: Pool,
    private readonly scheduler: Scheduler,
    private readonly models: ModelWatcher,
    private readonly auth: RasaAuth,
    private readonly upstreamTimeoutMs: number,
  ) {
    this.entries = new LRUCache<string, Answer>({
      max: config.maxEntries,
      maxSize: config.maxBytes,
      sizeCalculation: (a, key) => a.body.length + key.length + 64,
      ttl: config.ttlMs,
    });
  }

  get size(): number {
    return this.entries.size;
  }

  async decide(req: ParseRequest): Promise<CacheDecision> {
    if (req.cacheControl && /no-cache|no-store/i.test(req.cacheControl)) return { bypass: 'no_cache' };
    if (!(await callerVerified(req.url, req.authorization, this.auth))) return { bypass: 'unverified' };
    const model = this.models.consensus;
    if (model === undefined) return { bypass: 'model_unknown' };
    const content = meaningfulContent(req.body, req.url);
    return content === undefined ? { bypass: 'not_parseable' } : { key: `${model}\u0000${content}` };
  }

  lookup(key: string): Answer | undefined {
    return this.entries.get(key);
  }

  /** Joins the flight for `key`, starting it if none is in the air; `leader` says which happened. */
  fetch(key: string, req: ParseRequest): { answer: Promise<Answer>; leader: boolean } {
    const inFlight = this.flights.get(key);
    if (inFlight) return { answer: inFlight, leader: false };
    const model = key.slice(0, key.indexOf('\u0000'));
    const answer = new Promise<Answer>((resolve, reject) => {
      const ticket = new FlightTicket(this, req, resolve, reject);
      ticket.deadlineMs = req.deadlineMs;
      this.scheduler.admit(ticket);
    }).then((a) => {
      if (a.status === 200 && this.models.modelOf(this.pool.get(a.pod) as Backend) === model) this.entries.set(key, a);
      return a;
    });
    const flight = answer.finally(() => this.flights.delete(key));
    this.flights.set(key, flight);
    return { answer: flight, leader: true };
  }

  /** One upstream attempt on the leased pod; the lease is released whatever happens. */
  async run(ticket: ScheduledTicket, lease: Lease, req: ParseRequest): Promise<Answer> {
    const backend = lease.backend;
    const started = this.pool.now();
    let outcome: Outcome = 'gateway-error';
    try {
      const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
      const headers: Record<string, string> = { 'content-type': req.contentType ?? 'application/json' };
      if (req.authorization) headers.authorization = req.authorization;
      const timeout = Math.min(this.upstreamTimeoutMs, Math.max(1, req.deadlineMs - started));
      const res = await fetch(`${backend.origin}/model/parse${query}`, { method: 'POST', headers, body: req.body, signal: AbortSignal.timeout(timeout) });
      const body = Buffer.from(await res.arrayBuffer());
      outcome = res.status < 500 ? 'ok' : 'pod-error';
      return { status: res.status, contentType: res.headers.get('content-type') ?? 'application/json', body, pod: backend.key };
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        outcome = 'timeout';
        throw new GatewayError(this.pool.now() >= req.deadlineMs ? 'DEADLINE_EXCEEDED' : 'UPSTREAM_TIMEOUT');
      }
      const failure = classifyUpstreamError(err, false);
      outcome = failure.outcome;
      throw failure.error;
    } finally {
      lease.release(outcome, this.pool.now() - started);
      this.scheduler.finish(ticket);
    }
  }
}

/** A parse the cache sends upstream for everyone waiting on its answer: unkeyed, so it never waits for a turn. */
class FlightTicket extends ScheduledTicket {
  constructor(
    private readonly cache: ParseCache,
    private readonly req: ParseRequest,
    private readonly resolve: (a: Answer) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    super();
  }

  override onGranted(): void {
    this.cache.run(this, this.lease as Lease, this.req).then(this.resolve, this.reject);
  }

  override onRejected(error: GatewayError): void {
    this.reject(error);
  }

  override onTurn(): void {}
}

/** The parse request's content that decides the answer: body minus `message_id`, query minus `token`. */
function meaningfulContent(body: Buffer, url: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const fields = { ...(parsed as Record<string, unknown>) };
  if (typeof fields.text !== 'string') return undefined;
  delete fields.message_id;
  const sortedBody = Object.keys(fields)
    .sort()
    .map((k) => [k, fields[k]]);
  const q = url.indexOf('?');
  const params = q === -1 ? [] : [...new URLSearchParams(url.slice(q + 1))].filter(([k]) => k !== 'token').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  try {
    return JSON.stringify([sortedBody, params]);
  } catch {
    return undefined; // nesting too deep for a recursive stringify (JSON.parse takes it): not cacheable
  }
}
