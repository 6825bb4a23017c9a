/** FIFO of tickets as an intrusive doubly linked list: O(1) push, shift and removal of any member. */
import type { Ticket } from './ticket.js';

export class TicketQueue {
  private head: Ticket | undefined;
  private tail: Ticket | undefined;
  length = 0;

  peek(): Ticket | undefined {
    return this.head;
  }

  push(ticket: Ticket): void {
    ticket.inQueue = this;
    ticket.prev = this.tail;
    ticket.next = undefined;
    if (this.tail) this.tail.next = ticket;
    else this.head = ticket;
    this.tail = ticket;
    this.length++;
  }

  shift(): Ticket | undefined {
    const ticket = this.head;
    if (ticket) this.remove(ticket);
    return ticket;
  }

  remove(ticket: Ticket): boolean {
    if (ticket.inQueue !== this) return false;
    if (ticket.prev) ticket.prev.next = ticket.next;
    else this.head = ticket.next;
    if (ticket.next) ticket.next.prev = ticket.prev;
    else this.tail = ticket.prev;
    ticket.prev = ticket.next = ticket.inQueue = undefined;
    this.length--;
    return true;
  }

  /** Removes and returns every ticket, oldest first. */
  drain(): Ticket[] {
    const out: Ticket[] = [];
    for (let t = this.shift(); t; t = this.shift()) out.push(t);
    return out;
  }
}
