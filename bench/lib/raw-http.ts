/**
 * HTTP/1.x over a raw TCP socket (node:net), for requests no HTTP client would send: garbage request
 * lines, conflicting headers, `Expect: 100-continue` with a wait, uploads abandoned half way. A
 * request is a list of steps (bytes to write, pauses, a wait for `100 Continue`); the answer is read
 * just far enough to know its final status and whether it is complete (content-length, chunked, or
 * no body), and every exchange ends within its time limit: the socket is destroyed then, answered or not.
 */
import { connect } from 'node:net';

/** Bytes to write; a pause; or a wait (bounded) for an interim `100 Continue` before the next step. */
export type RawStep = string | Buffer | { readonly pauseMs: number } | { readonly awaitContinueMs: number };

export interface RawRequest {
  readonly steps: readonly RawStep[];
  /** Destroy the socket this long after connecting, answered or not: a client that vanishes. */
  readonly abandonAfterMs?: number;
  /** Half-close (FIN) after the last step: a client that says it has nothing more to send. */
  readonly endAfterSteps?: boolean;
  /** Hard limit for the whole exchange (default 2 s): the socket is destroyed then. */
  readonly timeoutMs?: number;
}

/**
 * How the exchange ended. `complete`: a whole answer arrived and the client closed; `server-close`:
 * the server ended the connection with a FIN (after an answer or without one: a clean close);
 * `reset`: ECONNRESET/EPIPE; `timeout`: the time limit; `abandoned`: the client left on purpose
 * (`abandonAfterMs`); `refused`: no connection (nothing listening).
 */
export type RawEnd = 'complete' | 'server-close' | 'reset' | 'timeout' | 'abandoned' | 'refused';

export interface RawResult {
  /** The final status (not 100/102/103), when one arrived. */
  readonly status?: number;
  /** Interim statuses seen before it (100 Continue, 103 Early Hints). */
  readonly interim: readonly number[];
  readonly end: RawEnd;
  /** The start of the answer (status line, headers, body), for diagnosis. */
  readonly head: string;
  readonly ms: number;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const CHUNKED_END = Buffer.from('0\r\n\r\n');

/** What `buf` (everything received so far) says: interim statuses, the final one, and whether it is all there. */
function parseAnswer(buf: Buffer): { interim: number[]; status?: number; complete: boolean } {
  const interim: number[] = [];
  let rest = buf;
  for (;;) {
    const at = rest.indexOf(HEAD_END);
    if (at === -1) return { interim, complete: false };
    const head = rest.subarray(0, at).toString('latin1');
    const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head)?.[1] ?? NaN);
    if (!Number.isFinite(status)) return { interim, complete: false };
    const body = rest.subarray(at + HEAD_END.length);
    if (status === 100 || status === 102 || status === 103) {
      interim.push(status);
      rest = body;
      continue;
    }
    if (status === 101 || status === 204 || status === 304) return { interim, status, complete: true };
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length) return { interim, status, complete: body.length >= Number(length[1]) };
    const chunked = /\r\ntransfer-encoding:[^\r]*chunked/i.test(head);
    // Without a length the answer ends when the server closes.
    return { interim, status, complete: chunked && body.length >= CHUNKED_END.length && body.subarray(-CHUNKED_END.length).equals(CHUNKED_END) };
  }
}

/** One raw exchange on a fresh connection to host:port; never rejects. */
export function rawExchange(host: string, port: number, req: RawRequest): Promise<RawResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect({ host, port });
    let interim: number[] = [];
    let received = Buffer.alloc(0);
    let status: number | undefined;
    let end: RawEnd | undefined;
    let connected = false;
    let onInterim: (() => void) | undefined;
    const timers: NodeJS.Timeout[] = [];
    const finish = (how: RawEnd) => {
      end ??= how;
      socket.destroy();
    };
    timers.push(setTimeout(() => finish('timeout'), req.timeoutMs ?? 2000));
    if (req.abandonAfterMs !== undefined) timers.push(setTimeout(() => finish('abandoned'), req.abandonAfterMs));
    socket.on('data', (d: Buffer) => {
      if (received.length < 64 * 1024) received = Buffer.concat([received, d]);
      const answer = parseAnswer(received);
      const more = answer.interim.length > interim.length;
      interim = answer.interim;
      status = answer.status;
      if (more) onInterim?.();
      if (answer.complete) finish('complete');
    });
    socket.on('end', () => finish('server-close'));
    socket.on('error', () => finish(connected ? 'reset' : 'refused'));
    socket.on('close', () => {
      for (const t of timers) clearTimeout(t);
      resolve({ ...(status !== undefined ? { status } : {}), interim: [...interim], end: end ?? 'server-close', head: received.subarray(0, 200).toString('latin1'), ms: performance.now() - started });
    });
    socket.on('connect', () => {
      connected = true;
      void (async () => {
        for (const step of req.steps) {
          if (end !== undefined) return;
          if (typeof step === 'string' || Buffer.isBuffer(step)) {
            if (!socket.write(step)) await new Promise<void>((r) => socket.once('drain', r).once('close', r));
          } else if ('pauseMs' in step) {
            await new Promise<void>((r) => timers.push(setTimeout(r, step.pauseMs)));
          } else if (interim.length === 0) {
            await new Promise<void>((r) => {
              onInterim = r;
              timers.push(setTimeout(r, step.awaitContinueMs));
            });
          }
        }
        if (req.endAfterSteps && end === undefined) socket.end();
      })();
    });
  });
}

/** "2xx", "4xx", ... for a status; the way it ended when no final status arrived. */
export function rawOutcome(r: RawResult): string {
  return r.status !== undefined ? `${Math.floor(r.status / 100)}xx` : r.end === 'server-close' ? 'closed' : r.end === 'abandoned' ? 'left' : r.end;
}
