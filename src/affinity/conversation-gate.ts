/**
 * At most one request in flight per conversation: a second message of the same sender waits here
 * until the first has its answer, so turns reach Rasa in order and never contend for its lock store.
 * Waiters sit in a TicketQueue parked through the pool's central queue, so they obey the same length
 * limit, deadline and client-abort rules as any queued request.
 */
import { TicketQueue } from '../admission/ticket-queue.js';
import type { Ticket } from '../admission/ticket.js';

export class ConversationGate {
  /** Conversations with a request in flight, and who waits behind it (null: nobody yet). */
  private readonly busy = new Map<string, TicketQueue | null>();

  /** Undefined: the caller holds the conversation now. Otherwise the queue to park in. */
  enter(key: string): TicketQueue | undefined {
    if (!this.busy.has(key)) {
      this.busy.set(key, null);
      return undefined;
    }
    let queue = this.busy.get(key);
    if (!queue) {
      queue = new TicketQueue();
      this.busy.set(key, queue);
    }
    return queue;
  }

  /** The holder is done: returns the next waiter, who now holds the conversation, if any. */
  leave(key: string): Ticket | undefined {
    const next = this.busy.get(key)?.peek();
    if (next) return next;
    this.busy.delete(key);
    return undefined;
  }

  /**
   * Forgets every conversation: returns the waiters (still parked where they were), in no particular
   * order; the turns held now are no longer this gate's (another replica took over scheduling).
   */
  clear(): Ticket[] {
    const waiters: Ticket[] = [];
    for (const queue of this.busy.values()) for (let t = queue?.peek(); t; t = t.next) waiters.push(t);
    this.busy.clear();
    return waiters;
  }

  /** Marks a conversation's turn as held (by a request another replica reported in flight). */
  hold(key: string): void {
    if (!this.busy.has(key)) this.busy.set(key, null);
  }

  get size(): number {
    return this.busy.size;
  }
}
