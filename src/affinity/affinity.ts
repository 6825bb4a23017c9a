/**
 * Conversation stickiness for one pool (`affinity: rasa`). A conversation's first request picks its
 * pod by rendezvous hashing over the pods that take new work, so every gateway replica agrees with no
 * shared store; the choice is remembered in a bounded LRU table with an idle TTL, so pods that join
 * later move no existing conversation on this replica. A conversation moves only when its pod can no
 * longer serve it (removed, ejected or not ready); a draining pod keeps its conversations until they go idle.
 *
 * Trade-off (ingress-nginx's "balanced" vs "persistent" modes): the table makes this replica
 * persistent, while a replica that never saw the conversation (a new replica, or after the entry
 * expired) recomputes rendezvous over today's pods, which after a scale-up may name a new pod for
 * about 1/n of the conversations. Measured and documented in the README.
 */
import { LRUCache } from 'lru-cache';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import { ConversationGate } from './conversation-gate.js';
import { rendezvousPick } from './rendezvous.js';
import { podToken } from './socketio-sid.js';

export type MoveReason = 'removed' | 'ejected' | 'not-ready' | 'draining';

export interface AffinityOptions {
  readonly maxEntries: number;
  readonly idleTtlMs: number;
  readonly onMove?: (reason: MoveReason) => void;
}

/** Hears every new conversation -> pod binding (cluster scheduling copies the table to its peers). */
export type AssignListener = (key: string, backend: Backend) => void;

export class Affinity {
  private readonly table: LRUCache<string, Backend>;
  private readonly tokens = new Map<string, Backend>();
  readonly gate = new ConversationGate();
  private readonly purgeTimer: NodeJS.Timeout;
  /** Set by cluster scheduling; undefined alone. */
  onAssign: AssignListener | undefined = undefined;

  constructor(
    private readonly pool: Pool,
    private readonly options: AffinityOptions,
  ) {
    this.table = new LRUCache<string, Backend>({
      max: options.maxEntries,
      ttl: options.idleTtlMs,
      updateAgeOnGet: true,
      dispose: (backend) => {
        backend.sessions--;
      },
    });
    for (const b of pool.backends) this.tokens.set(podToken(b), b);
    pool.listen({
      backendAdded: (b) => this.tokens.set(podToken(b), b),
      backendRemoved: (b) => {
        if (this.tokens.get(podToken(b)) === b) this.tokens.delete(podToken(b));
      },
    });
    // Expired entries are dropped lazily on access; a sweep keeps session counts honest.
    this.purgeTimer = setInterval(() => this.table.purgeStale(), Math.min(60_000, options.idleTtlMs)).unref();
  }

  /** The pod of this conversation, assigning one (rendezvous) if it has none that can serve it. */
  backendFor(key: string): Backend | undefined {
    const current = this.table.get(key);
    if (current && current.servesSticky) return current;
    const next = rendezvousPick(key, this.pool.backends);
    if (!next) return undefined;
    if (current) this.options.onMove?.(current.state === 'ejected' || current.state === 'not-ready' ? current.state : 'removed');
    this.remember(key, next);
    return next;
  }

  /** Binds a conversation to a pod chosen elsewhere (a socket.io session's `session_id`). */
  remember(key: string, backend: Backend): void {
    if (this.table.peek(key) === backend) return;
    this.table.set(key, backend);
    backend.sessions++;
    this.onAssign?.(key, backend);
  }

  /** The pod a socket.io sid token names, if it can still serve. */
  backendForToken(token: string): Backend | undefined {
    const backend = this.tokens.get(token);
    return backend && backend.servesSticky ? backend : undefined;
  }

  /** For a new socket.io session: the pod with the fewest open sockets among those taking new work. */
  pickForNewSocket(): Backend | undefined {
    let best: Backend | undefined;
    for (const b of this.pool.backends) {
      if (b.acceptsNewWork && (!best || b.sockets + b.sessions < best.sockets + best.sessions)) best = b;
    }
    return best;
  }

  get size(): number {
    return this.table.size;
  }

  close(): void {
    clearInterval(this.purgeTimer);
  }
}
