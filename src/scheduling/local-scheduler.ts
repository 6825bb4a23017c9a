/**
 * Scheduling in this replica: the pool's ordering gate and sticky table (affinity/) in front of its
 * central queue (admission/). Used alone when the gateway runs without a cluster, and by the replica
 * that schedules a pool for the cluster, for its own requests and its peers' alike.
 */
import type { Admission } from '../admission/admission.js';
import type { Affinity } from '../affinity/affinity.js';
import type { Backend } from '../pool/backend.js';
import type { ScheduledTicket, Scheduler } from './scheduler.js';

export class LocalScheduler implements Scheduler {
  constructor(
    private readonly admission: Admission,
    private readonly affinity: Affinity | undefined,
    /** A request waits behind another of its conversation (metrics). */
    private readonly onTurnWait: () => void = () => {},
  ) {}

  admit(ticket: ScheduledTicket): void {
    const key = ticket.conversationKey;
    if (key !== undefined && ticket.ordered && this.affinity) {
      const waitIn = this.affinity.gate.enter(key);
      if (waitIn) {
        this.onTurnWait();
        this.admission.queue.park(ticket, waitIn);
        return;
      }
      ticket.holdsTurn = true;
    }
    this.admitAgain(ticket);
  }

  admitAgain(ticket: ScheduledTicket): void {
    const key = ticket.conversationKey;
    if (key !== undefined && this.affinity) {
      ticket.sticky = this.affinity;
      ticket.target = this.affinity.backendFor(key);
    }
    this.admission.admit(ticket);
  }

  finish(ticket: ScheduledTicket): void {
    if (ticket.state === 'queued') this.admission.cancel(ticket);
    if (!ticket.holdsTurn) return;
    ticket.holdsTurn = false;
    const next = this.affinity?.gate.leave(ticket.conversationKey as string) as ScheduledTicket | undefined;
    if (!next) return;
    this.admission.queue.unpark(next);
    next.holdsTurn = true;
    next.onTurn();
  }

  remember(key: string, backend: Backend): void {
    this.affinity?.remember(key, backend);
  }
}
