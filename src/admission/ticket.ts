/**
 * A request's place in admission: queued, granted a slot on a pod, released. The proxy's per-request
 * context extends it, so admitting a request allocates one object and no closures. Each grant gives it
 * a lease on the slot (lease.ts), released exactly once whatever ends the attempt (response end, error,
 * timeout, client abort).
 */
import type { Backend } from '../pool/backend.js';
import type { GatewayError } from '../errors.js';
import type { Lease } from './lease.js';

export type TicketState = 'new' | 'queued' | 'granted' | 'released' | 'rejected';

export abstract class Ticket {
  state: TicketState = 'new';
  /** Arrival order, so a freed slot goes to the oldest waiter whichever queue it is in. */
  seq = 0;
  enqueuedAtMs = 0;
  grantedAtMs = 0;
  /** The current attempt's slot (see lease.ts); set at each grant, released exactly once per attempt. */
  lease: Lease | undefined = undefined;
  /** Slots granted so far: the next lease's attempt number is one more. */
  grants = 0;
  /** Completion-aware dispatch: when it was expected to start on its pod (later than the grant if it queues there). */
  expectedStartMs = 0;
  /** The pod this request must use (sticky conversation); undefined: any pod. */
  target: Backend | undefined = undefined;
  /** A pod not to use (a retry avoids the pod that failed it). */
  avoid: Backend | undefined = undefined;
  /** The pod holding this request's slot once granted. */
  backend: Backend | undefined = undefined;
  /** Absolute time (ms) after which a queued request is rejected. */
  deadlineMs = Infinity;
  timer: NodeJS.Timeout | undefined = undefined;
  // Intrusive links for TicketQueue: O(1) removal when a client leaves.
  prev: Ticket | undefined = undefined;
  next: Ticket | undefined = undefined;
  inQueue: object | undefined = undefined;

  /** The pod's slot is ours; may be called synchronously from `admit`. */
  abstract onGranted(backend: Backend): void;
  abstract onRejected(error: GatewayError): void;
  /** Called when the target pod left while this ticket waited for it; returns the new target. */
  repin(): Backend | undefined {
    return undefined;
  }
}
