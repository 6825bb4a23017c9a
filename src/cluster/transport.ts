/**
 * The cluster's transport: one persistent TCP connection per pair of replicas, used in both
 * directions. Of two replicas, the one whose advertise URL sorts lower dials; the other only
 * accepts. One rule both sides compute alike means there is never a second connection to reconcile,
 * and a replica that restarts is redialled (or redials) on its own.
 *
 * Handshake: the dialer sends `sys.hello { v, from, to, id }` (its advertise URL, the URL it dialled,
 * its incarnation: random per process start); the acceptor checks `to` is itself (an address reused
 * by another replica is refused) and answers with its own hello; the dialer checks the answer came
 * from the URL it dialled. Only then is the link up. A second link from the same peer replaces the
 * first (the peer restarted; the old socket may not have noticed yet). Links from replicas this one
 * does not know yet are accepted: with Kubernetes membership a new replica may see this one in its
 * EndpointSlices before this one sees it.
 *
 * Dialling: reconnect after a failure or a drop with capped exponential backoff and jitter
 * (`initialMs` doubling to `maxMs`, each delay 50-100 % of its ceiling), reset by a handshake that
 * succeeds. A connection that has not finished its handshake after `helloTimeoutMs` is cut, so a
 * dead pod's IP (SYNs unanswered) never holds a dial for the kernel's two minutes.
 *
 * The cluster port carries no authentication: it must stay inside the cluster (see README, Replicas
 * and the cluster). Everything malformed on it drops the link and is counted, nothing throws out.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { ListenConfig } from '../config.js';
import type { ClusterMessage } from './frame.js';
import { Link, type LinkCloseReason, type LinkOptions } from './link.js';

export const PROTOCOL_VERSION = 1;

export interface TransportLogger {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
  debug?(details: object, message: string): void;
}

export interface TransportEvents {
  linkUp(peer: string, incarnation: string): void;
  linkDown(peer: string): void;
  message(peer: string, message: ClusterMessage): void;
  /** A link failed for a reason worth counting (bad frame, bad handshake, overflow, socket error). */
  linkError(reason: string): void;
}

export interface TransportOptions extends LinkOptions {
  readonly self: string;
  readonly listen: ListenConfig;
  readonly incarnation: string;
  readonly events: TransportEvents;
  readonly logger: TransportLogger;
  readonly helloTimeoutMs?: number;
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  readonly random?: () => number;
}

interface Dialer {
  failures: number;
  timer: NodeJS.Timeout | undefined;
  socket: Socket | undefined;
}

/** `http://host:port` (an origin; IPv6 in brackets) as connect() options. */
function address(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 80) };
}

function isHello(m: ClusterMessage): m is ClusterMessage & { from: string; to: string; id: string; v: number } {
  return m.t === 'sys.hello' && typeof m.from === 'string' && typeof m.to === 'string' && typeof m.id === 'string' && m.v === PROTOCOL_VERSION;
}

export class Transport {
  private server: Server | undefined;
  private readonly links = new Map<string, Link>();
  private readonly dialers = new Map<string, Dialer>();
  /** Sockets before or during the handshake, cut on stop. */
  private readonly handshaking = new Set<Socket>();
  private readonly helloTimeoutMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly random: () => number;
  private stopped = false;

  constructor(private readonly options: TransportOptions) {
    this.helloTimeoutMs = options.helloTimeoutMs ?? 2000;
    this.initialBackoffMs = options.backoff?.initialMs ?? 50;
    this.maxBackoffMs = options.backoff?.maxMs ?? 1000;
    this.random = options.random ?? Math.random;
  }

  get self(): string {
    return this.options.self;
  }

  /** Opens the listener. */
  async start(): Promise<void> {
    const server = createServer((socket) => this.accepted(socket));
    server.on('error', (err) => this.options.logger.warn({ err }, 'cluster listener error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.options.listen.host, port: this.options.listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** The replicas to keep a link with: dials those that sort above this one, forgets the rest. */
  setPeers(peers: Iterable<string>): void {
    if (this.stopped) return;
    const wanted = new Set([...peers].filter((p) => p !== this.self));
    for (const peer of wanted) {
      if (this.self < peer && !this.dialers.has(peer)) {
        this.dialers.set(peer, { failures: 0, timer: undefined, socket: undefined });
        if (!this.links.has(peer)) this.dial(peer);
      }
    }
    for (const [peer, dialer] of this.dialers) {
      if (wanted.has(peer)) continue;
      clearTimeout(dialer.timer);
      dialer.socket?.destroy();
      this.dialers.delete(peer);
      this.links.get(peer)?.close('no longer a peer');
    }
  }

  isLinked(peer: string): boolean {
    return this.links.has(peer);
  }

  send(peer: string, message: ClusterMessage): boolean {
    return this.links.get(peer)?.send(message) ?? false;
  }

  /** Closes the link to `peer` (it is redialled if this replica dials it). */
  drop(peer: string, why: string): void {
    this.links.get(peer)?.close(why);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const dialer of this.dialers.values()) clearTimeout(dialer.timer);
    this.dialers.clear();
    for (const socket of this.handshaking) socket.destroy();
    for (const link of [...this.links.values()]) link.close('stopping');
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private hello(to: string): ClusterMessage {
    return { t: 'sys.hello', v: PROTOCOL_VERSION, from: this.self, to, id: this.options.incarnation };
  }

  private dial(peer: string): void {
    const dialer = this.dialers.get(peer);
    if (!dialer || this.stopped) return;
    const socket = connect(address(peer));
    dialer.socket = socket;
    this.handshake(socket, peer, (link, hello) => {
      if (hello.from !== peer) {
        this.refused(link, 'handshake', { peer, answeredAs: hello.from }, 'a cluster peer answered with another advertise URL than the one dialled; check cluster.advertise on both');
        return false;
      }
      return true;
    }).then(
      (up) => {
        if (dialer.socket === socket) dialer.socket = undefined;
        if (up) dialer.failures = 0;
        else this.redial(peer);
      },
      () => undefined,
    );
    socket.once('connect', () => socket.write(`${JSON.stringify(this.hello(peer))}\n`));
  }

  /** Schedules the next dial of `peer` after a failure or a drop (only while it is still a peer this replica dials). */
  private redial(peer: string): void {
    const dialer = this.dialers.get(peer);
    if (!dialer || this.stopped || dialer.timer || dialer.socket || this.links.has(peer)) return;
    const ceiling = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.min(dialer.failures, 20));
    dialer.failures++;
    dialer.timer = setTimeout(() => {
      dialer.timer = undefined;
      this.dial(peer);
    }, Math.round(ceiling / 2 + (this.random() * ceiling) / 2));
    dialer.timer.unref();
  }

  private accepted(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    void this.handshake(socket, undefined, (link, hello) => {
      if (hello.to !== this.self) {
        this.refused(link, 'handshake', { from: hello.from, dialled: hello.to }, 'a cluster peer dialled another replica at this address; refused');
        return false;
      }
      if (hello.from === this.self) {
        this.refused(link, 'handshake', { from: hello.from }, 'a cluster peer claims this replica\'s own advertise URL; refused');
        return false;
      }
      link.send(this.hello(hello.from));
      return true;
    });
  }

  /**
   * Runs the handshake on a fresh socket: resolves true once the link is up and registered, false if
   * it failed (the socket is closed then). `accept` sees the peer's hello and may refuse it.
   */
  private handshake(socket: Socket, dialled: string | undefined, accept: (link: Link, hello: ClusterMessage & { from: string; id: string }) => boolean): Promise<boolean> {
    this.handshaking.add(socket);
    const link = new Link(socket, this.options);
    socket.setTimeout(this.helloTimeoutMs, () => link.close('no handshake in time'));
    return new Promise<boolean>((resolve) => {
      let peer: string | undefined;
      link.onMessage = (message) => {
        if (peer !== undefined) {
          this.options.events.message(peer, message);
          return;
        }
        if (!isHello(message)) {
          this.refused(link, 'handshake', { dialled, type: message.t }, 'a cluster connection did not open with a valid sys.hello; dropped');
          return;
        }
        if (!accept(link, message)) return;
        peer = message.from;
        this.handshaking.delete(socket);
        socket.setTimeout(0);
        this.links.get(peer)?.close('replaced by a new connection');
        this.links.set(peer, link);
        this.options.events.linkUp(peer, message.id);
        resolve(true);
      };
      link.onClose = (reason) => {
        this.handshaking.delete(socket);
        this.closed(peer, link, reason, dialled);
        if (peer === undefined) resolve(false);
        else if (dialled !== undefined) this.redial(dialled);
      };
    });
  }

  private refused(link: Link, reason: string, details: object, message: string): void {
    this.options.logger.warn(details, message);
    this.options.events.linkError(reason);
    link.close(reason);
  }

  private closed(peer: string | undefined, link: Link, reason: LinkCloseReason, dialled: string | undefined): void {
    if (peer !== undefined && this.links.get(peer) === link) {
      this.links.delete(peer);
      this.options.events.linkDown(peer);
    }
    const who = peer ?? dialled ?? `${link.socket.remoteAddress}:${link.socket.remotePort}`;
    switch (reason.kind) {
      case 'frame':
        this.options.logger.warn({ peer: who, error: reason.error.message }, 'malformed frame on the cluster port; link dropped');
        this.options.events.linkError('frame');
        break;
      case 'overflow':
        this.options.logger.warn({ peer: who }, 'cluster peer stopped reading; link dropped');
        this.options.events.linkError('overflow');
        break;
      case 'socket':
        // Refused or reset dials are the normal life of a peer that is down: logged at debug only.
        if (peer !== undefined) this.options.logger.info({ peer: who, error: reason.error.message }, 'cluster link failed');
        else this.options.logger.debug?.({ peer: who, error: reason.error.message }, 'cluster connection failed');
        if (peer !== undefined) this.options.events.linkError('socket');
        break;
      default:
        if (peer !== undefined && reason.kind === 'closed') this.options.logger.info({ peer: who }, 'cluster link closed');
    }
  }
}
