/**
 * The discovery seam: a source of the pool's endpoints. Each update is the whole current set (a
 * snapshot); the pool diffs it against what it has, as tower's discovery does, so sources stay simple.
 */
export interface EndpointInfo {
  /** Stable identity of the endpoint within its pool: its origin, e.g. `http://10.0.0.5:5005`. */
  readonly key: string;
  readonly origin: string;
  readonly pod?: string;
  readonly zone?: string;
  /** Takes new requests and new conversations. */
  readonly ready: boolean;
  /** Can still answer: with `terminating`, keeps in-flight work and sticky conversations (drain). */
  readonly serving: boolean;
  readonly terminating: boolean;
}

export type EndpointListener = (endpoints: readonly EndpointInfo[]) => void;

export interface Discovery {
  /** A short description for logs and /debug, e.g. `static(2)` or `k8s rasa/rasa:http`. */
  readonly description: string;
  /** Starts watching; calls `onUpdate` with each new snapshot. Resolves once the first one was delivered. */
  start(onUpdate: EndpointListener): Promise<void>;
  stop(): void;
}
