/** A Ticket that records what admission did with it, for pool and queue unit tests. */
import { Admission, type AdmissionOptions } from '../../src/admission/admission.js';
import { Ticket } from '../../src/admission/ticket.js';
import { Pool, type PoolOptions } from '../../src/pool/pool.js';
import type { GatewayError } from '../../src/errors.js';
import type { EndpointInfo } from '../../src/discovery/types.js';
import type { Backend } from '../../src/pool/backend.js';

export class RecordingTicket extends Ticket {
  granted: Backend | undefined;
  error: GatewayError | undefined;
  repinTo: Backend | undefined;

  constructor(readonly label = '') {
    super();
  }

  override onGranted(backend: Backend): void {
    this.granted = backend;
  }

  override onRejected(error: GatewayError): void {
    this.error = error;
  }

  override repin(): Backend | undefined {
    return this.repinTo;
  }
}

export function endpoint(n: number, overrides: Partial<EndpointInfo> = {}): EndpointInfo {
  const origin = `http://10.0.0.${n}:5005`;
  return { key: origin, origin, pod: `rasa-${n}`, ready: true, serving: true, terminating: false, ...overrides };
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function seeded(seed = 42): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A pool with its admission, as the gateway builds one (pod-level calls go to `.pool`). */
export function admissionFor(options: PoolOptions & AdmissionOptions): Admission {
  return new Admission(new Pool(options), options);
}
