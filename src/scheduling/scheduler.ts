/**
 * The scheduling seam: how a pool's requests get their conversation's turn and their slot. The
 * proxy asks its pool's `Scheduler` and hears back through the ticket (`onGranted`, `onRejected`,
 * `onTurn`); it does not know whether the queue, the sticky table and the ordering gates are in this
 * replica (local-scheduler.ts) or in the replica that schedules the pool for the whole cluster
 * (cluster-scheduler.ts). Either way a grant is a lease (admission/lease.ts) to the proxy.
 */
import type { Backend } from '../pool/backend.js';
import { Ticket } from '../admission/ticket.js';

/** A request as scheduling sees it: an admission ticket with its conversation. */
export abstract class ScheduledTicket extends Ticket {
  /** The conversation this request belongs to (sticky pools); undefined: any pod. */
  conversationKey: string | undefined = undefined;
  /** One request per conversation at a time: wait for the conversation's turn before a slot. */
  ordered = false;
  /** Whether this request holds its conversation's turn and must pass it on when done. */
  holdsTurn = false;
  /** Cluster scheduling: this request's id at the replica that schedules the pool (0: not known there). */
  clusterId = 0;
  /** Where a keyed ticket's conversation finds a new pod when its pod is lost while it waits. */
  sticky: { backendFor(key: string): Backend | undefined } | undefined = undefined;
  /** The conversation's turn came (it waited behind another request): go on with `Scheduler.admitAgain`. */
  abstract onTurn(): void;

  override repin(): Backend | undefined {
    return this.conversationKey !== undefined ? this.sticky?.backendFor(this.conversationKey) : undefined;
  }
}

export interface Scheduler {
  /** Waits for the conversation's turn (ordered keyed requests), then for a slot on its pod (keyed) or any pod. */
  admit(ticket: ScheduledTicket): void;
  /** A slot for a ticket that needs no turn or holds it already: a retry (avoiding `ticket.avoid`) or a turn that came. */
  admitAgain(ticket: ScheduledTicket): void;
  /** The request is over (answered, failed or the client left): a waiting ticket leaves, its turn passes on. */
  finish(ticket: ScheduledTicket): void;
  /** A conversation that lives on `backend` (a socket.io session's `session_id`). */
  remember(key: string, backend: Backend): void;
}
