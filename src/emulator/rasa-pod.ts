/**
 * An emulated Rasa 3 pod for tests, the demo and the benchmarks. It speaks the HTTP API the gateway
 * sees (see shared rasa.md) and models the study's pod: K slots that run requests in parallel, a
 * service time per request, FIFO inside the pod beyond K (a real Rasa queues in its event loop). Each
 * pod keeps trackers in memory, so a conversation split across pods is visible, and names itself in
 * the `x-rasa-pod` header. Failure modes let fault tests make it fail, hang or reset connections.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Server as SocketIoServer } from 'socket.io';

export type ServiceTime = number | (() => number);
export type PodMode = 'ok' | 'error' | 'hang' | 'reset';

export interface RasaPodOptions {
  readonly name: string;
  readonly host?: string;
  readonly port?: number;
  /** Requests processed at once; the rest wait FIFO inside the pod. */
  readonly slots?: number;
  /** Milliseconds of work per request on the routes that run the model. */
  readonly serviceTimeMs?: ServiceTime;
  readonly modelId?: string;
  /** Like Rasa's `--auth-token`: the model and status routes then need `?token=`. */
  readonly authToken?: string;
}

export interface TrackerEvent {
  readonly event: 'user' | 'bot';
  readonly text: string;
  readonly timestamp: number;
  /** Which pod recorded it: a conversation split across pods shows two names. */
  readonly pod: string;
}

interface Job {
  run(): void;
}

export class RasaPod {
  readonly name: string;
  readonly trackers = new Map<string, TrackerEvent[]>();
  /** Requests that reached this pod, by method and path kind. */
  readonly counts = new Map<string, number>();
  handled = 0;
  /**
   * Every HTTP request and upgrade that reached this pod, socket.io's included, counted before any
   * handler runs (by `METHOD path`, and in total): what the gateway let through.
   */
  requestsSeen = 0;
  readonly seenByPath = new Map<string, number>();
  /** The headers of the last request that reached this pod, as the gateway forwarded them. */
  lastHeaders: IncomingHttpHeaders | undefined = undefined;
  /** The last requests that reached this pod (at most 200), oldest first. */
  readonly recentRequests: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  /** The most requests of one conversation this pod ever ran at once (ordering makes it 1). */
  maxConcurrentPerConversation = 0;
  private readonly runningByConversation = new Map<string, number>();
  running = 0;
  maxRunning = 0;
  /**
   * The most requests this pod held at once, running or queued inside it (Rasa queues what exceeds
   * its slots): above its slots means the gateway sent more than the pod can run.
   */
  maxHeld = 0;
  mode: PodMode = 'ok';
  modelId: string;
  private slots: number;
  private serviceTime: ServiceTime;
  private readonly waiting: Job[] = [];
  private readonly sockets = new Set<Socket>();
  readonly server: Server;
  /** Rasa's socketio channel (python-socketio 5 / engine.io 4 compatible), as the chat widgets use it. */
  readonly io: SocketIoServer;
  url = '';

  constructor(readonly options: RasaPodOptions) {
    this.name = options.name;
    this.slots = options.slots ?? 1;
    this.serviceTime = options.serviceTimeMs ?? 300;
    this.modelId = options.modelId ?? 'model-1';
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.io = new SocketIoServer(this.server, { path: '/socket.io/', serveClient: false, cors: { origin: '*' } });
    const seen = (req: IncomingMessage, res?: ServerResponse) => {
      // engine.io answers socket.io requests itself: name the pod on those too.
      if (res && typeof res.setHeader === 'function') res.setHeader('x-rasa-pod', this.name);
      this.requestsSeen++;
      const key = `${req.method ?? ''} ${(req.url ?? '').split('?')[0]}`;
      this.seenByPath.set(key, (this.seenByPath.get(key) ?? 0) + 1);
      this.lastHeaders = req.headers;
      this.recentRequests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      if (this.recentRequests.length > 200) this.recentRequests.shift();
    };
    this.server.prependListener('request', seen);
    this.server.prependListener('upgrade', (req: IncomingMessage) => seen(req));
    this.io.on('connection', (socket) => {
      this.count('socket.io connection');
      socket.on('session_request', (data: { session_id?: string } | undefined) => {
        const sessionId = data?.session_id ?? socket.id;
        socket.data.sessionId = sessionId;
        socket.emit('session_confirm', sessionId);
      });
      socket.on('user_uttered', (data: { message?: string; session_id?: string } | undefined) => {
        const sessionId = data?.session_id ?? socket.data.sessionId ?? socket.id;
        const message = data?.message ?? '';
        this.count('socket.io user_uttered');
        this.schedule(() => {
          this.record(sessionId, 'user', message);
          this.record(sessionId, 'bot', `echo: ${message}`);
          socket.emit('bot_uttered', { text: `echo: ${message}`, pod: this.name });
        });
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    const { address, port } = this.server.address() as AddressInfo;
    this.url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
    return this;
  }

  setServiceTime(serviceTime: ServiceTime): void {
    this.serviceTime = serviceTime;
  }

  setSlots(slots: number): void {
    this.slots = slots;
    this.startWaiting();
  }

  /** Requests that waited inside the pod for one of its slots. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Stops at once: open connections are destroyed, like a pod that was killed. */
  async close(): Promise<void> {
    this.io.disconnectSockets(true);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private count(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('x-rasa-pod', this.name);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => this.route(req, res, Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => res.destroy());
  }

  private route(req: IncomingMessage, res: ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', 'http://pod');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    this.count(`${method} ${path.startsWith('/conversations/') ? '/conversations/*' : path}`);
    if (this.mode === 'reset') {
      req.socket.destroy();
      return;
    }
    if (this.mode === 'hang') return;
    if (this.mode === 'error') {
      json(res, 500, { version: '3.6.21', status: 'failure', message: 'emulated failure', reason: 'EmulatedError', code: 500 });
      return;
    }
    if (method === 'GET' && path === '/') return text(res, 200, 'Hello from Rasa: 3.6.21');
    const needsAuth = path === '/status' || path.startsWith('/model') || path.startsWith('/conversations/');
    if (needsAuth && this.options.authToken !== undefined && url.searchParams.get('token') !== this.options.authToken) {
      return json(res, 401, { version: '3.6.21', status: 'failure', message: 'User is not authenticated.', reason: 'NotAuthenticated', code: 401 });
    }
    if (method === 'GET' && path === '/version') return json(res, 200, { version: '3.6.21', minimum_compatible_version: '3.5.0' });
    if (method === 'GET' && path === '/status') {
      return json(res, 200, { model_file: `models/${this.modelId}.tar.gz`, model_id: this.modelId, num_active_training_jobs: 0 });
    }
    if (method === 'POST' && path === '/model/parse') {
      const parsed = parseJson(body) as { text?: unknown } | undefined;
      if (!parsed || typeof parsed.text !== 'string') return badRequest(res, 'No text message in the request body.');
      const input = parsed.text;
      return this.work(res, () => json(res, 200, nluParse(input, this.modelId)));
    }
    if (method === 'POST' && path === '/model/predict') {
      return this.work(res, () => json(res, 200, { scores: [{ action: 'utter_greet', score: 0.9 }], policy: 'TEDPolicy', confidence: 0.9 }));
    }
    const webhook = /^\/webhooks\/([^/]+)\/webhook$/.exec(path);
    if (method === 'POST' && webhook) {
      const parsed = parseJson(body) as { sender?: unknown; message?: unknown } | undefined;
      const sender = typeof parsed?.sender === 'string' ? parsed.sender : 'default';
      const message = typeof parsed?.message === 'string' ? parsed.message : '';
      this.enterConversation(sender);
      return this.work(res, () => {
        this.leaveConversation(sender);
        const reply = `echo: ${message}`;
        this.record(sender, 'user', message);
        this.record(sender, 'bot', reply);
        if (webhook[1] === 'callback') return text(res, 200, 'success');
        json(res, 200, [{ recipient_id: sender, text: reply }]);
      });
    }
    const conversation = /^\/conversations\/(.+)\/(tracker\/events|tracker|messages|trigger_intent|predict|execute|story)$/.exec(path);
    if (conversation) {
      const id = decodeURIComponent(conversation[1] as string);
      const action = conversation[2];
      if (method === 'GET' && action === 'tracker') return json(res, 200, this.tracker(id));
      if (method === 'POST' && action === 'messages') {
        const parsed = parseJson(body) as { text?: unknown } | undefined;
        if (!parsed || typeof parsed.text !== 'string') return badRequest(res, 'No text message in the request body.');
        const textIn = parsed.text;
        return this.work(res, () => {
          this.record(id, 'user', textIn);
          json(res, 200, this.tracker(id));
        });
      }
      if (method === 'POST' && action === 'trigger_intent') {
        return this.work(res, () => {
          this.record(id, 'bot', 'triggered');
          json(res, 200, { tracker: this.tracker(id), messages: [{ recipient_id: id, text: 'triggered' }] });
        });
      }
      if (method === 'POST' && action === 'predict') return this.work(res, () => json(res, 200, { scores: [], tracker: this.tracker(id) }));
    }
    json(res, 404, { version: '3.6.21', status: 'failure', message: 'Requested URL not found', reason: 'NotFound', code: 404 });
  }

  /** Runs `respond` after the service time, in one of the pod's slots (FIFO when all are taken). */
  private work(res: ServerResponse, respond: () => void): void {
    this.schedule(() => {
      if (!res.destroyed) respond();
    });
  }

  private schedule(done: () => void): void {
    const job: Job = {
      run: () => {
        this.running++;
        this.maxRunning = Math.max(this.maxRunning, this.running);
        const ms = typeof this.serviceTime === 'function' ? this.serviceTime() : this.serviceTime;
        setTimeout(() => {
          this.running--;
          this.handled++;
          done();
          this.startWaiting();
        }, ms);
      },
    };
    if (this.running < this.slots) job.run();
    else this.waiting.push(job);
    this.maxHeld = Math.max(this.maxHeld, this.running + this.waiting.length);
  }

  private startWaiting(): void {
    while (this.running < this.slots && this.waiting.length > 0) (this.waiting.shift() as Job).run();
  }

  private enterConversation(id: string): void {
    const n = (this.runningByConversation.get(id) ?? 0) + 1;
    this.runningByConversation.set(id, n);
    this.maxConcurrentPerConversation = Math.max(this.maxConcurrentPerConversation, n);
  }

  private leaveConversation(id: string): void {
    const n = (this.runningByConversation.get(id) ?? 1) - 1;
    if (n === 0) this.runningByConversation.delete(id);
    else this.runningByConversation.set(id, n);
  }

  private record(sender: string, event: 'user' | 'bot', textValue: string): void {
    let events = this.trackers.get(sender);
    if (!events) {
      events = [];
      this.trackers.set(sender, events);
    }
    events.push({ event, text: textValue, timestamp: Date.now() / 1000, pod: this.name });
  }

  private tracker(id: string) {
    const events = this.trackers.get(id) ?? [];
    const lastUser = [...events].reverse().find((e) => e.event === 'user');
    return {
      sender_id: id,
      slots: {},
      latest_message: { text: lastUser?.text ?? null, intent: {}, entities: [] },
      latest_event_time: events.at(-1)?.timestamp ?? null,
      paused: false,
      events,
      latest_input_channel: 'rest',
      active_loop: {},
      latest_action_name: 'action_listen',
    };
  }
}

function nluParse(input: string, modelId: string) {
  const lower = input.toLowerCase();
  const name = /\b(hi|hello|hey)\b/.test(lower) ? 'greet' : /\b(bye|goodbye)\b/.test(lower) ? 'goodbye' : /\b(yes|sure)\b/.test(lower) ? 'affirm' : /\bno\b/.test(lower) ? 'deny' : 'nlu_fallback';
  return {
    text: input,
    intent: { name, confidence: 0.93 },
    entities: [],
    intent_ranking: [{ name, confidence: 0.93 }, { name: 'nlu_fallback', confidence: 0.07 }],
    model_id: modelId,
  };
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function text(res: ServerResponse, status: number, value: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(value) });
  res.end(value);
}

function badRequest(res: ServerResponse, message: string): void {
  json(res, 400, { version: '3.6.21', status: 'failure', message, reason: 'BadRequest', code: 400 });
}

export async function startRasaPod(options: RasaPodOptions): Promise<RasaPod> {
  return new RasaPod(options).listen();
}
