/**
 * How an attempt's hold on its slot ended. Only what the pod did (`pod-error`: refused, reset, 5xx,
 * a bad answer; `timeout`) counts against it: a client that left or a request the gateway itself
 * could not send (`client-left`, `gateway-error`) says nothing about the pod.
 */
export type Outcome = 'ok' | 'pod-error' | 'timeout' | 'client-left' | 'gateway-error';

export function isPodFailure(outcome: Outcome): boolean {
  return outcome === 'pod-error' || outcome === 'timeout';
}
