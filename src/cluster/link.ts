/**
 * One TCP connection to a peer, used in both directions: framed messages out (frame.ts), in order,
 * coalesced into one socket write per event-loop turn, and framed messages in. Thousands of messages
 * per second then cost one syscall per turn instead of one per message (what `cork`/`uncork` would
 * give, without a buffer per message): `send` appends to a string, a `setImmediate` writes it.
 *
 * A link that misbehaves is closed, never thrown through: a malformed frame, a socket error, or a
 * peer that stops reading while more than `maxBufferedBytes` wait to be written (a slow consumer must
 * not grow this process's memory without bound). `onClose` is called exactly once, with the reason.
 */
import type { Socket } from 'node:net';
import { encodeFrame, FrameDecoder, FrameError, type ClusterMessage } from './frame.js';

export interface LinkOptions {
  readonly maxBufferedBytes?: number;
  readonly maxFrameChars?: number;
}

export type LinkCloseReason =
  | { readonly kind: 'closed' }
  | { readonly kind: 'frame'; readonly error: FrameError }
  | { readonly kind: 'socket'; readonly error: Error }
  | { readonly kind: 'overflow' }
  | { readonly kind: 'local'; readonly why: string };

const DEFAULT_MAX_BUFFERED = 16 * 1024 * 1024;

export class Link {
  /** Where received messages go; the transport swaps it from the handshake to the cluster's dispatch. */
  onMessage: (message: ClusterMessage) => void = () => {};
  onClose: (reason: LinkCloseReason) => void = () => {};
  private readonly decoder: FrameDecoder;
  private readonly maxBufferedBytes: number;
  private pending = '';
  private flushing: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(
    readonly socket: Socket,
    options: LinkOptions = {},
  ) {
    this.decoder = new FrameDecoder(options.maxFrameChars);
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.received(text));
    socket.on('error', (error) => this.end({ kind: 'socket', error }));
    socket.on('close', () => this.end({ kind: 'closed' }));
  }

  get open(): boolean {
    return !this.closed;
  }

  /** Queues one message for this turn's write; false (nothing queued) once the link is closed. */
  send(message: ClusterMessage): boolean {
    if (this.closed) return false;
    this.pending += encodeFrame(message);
    this.flushing ??= setImmediate(() => this.flush());
    return true;
  }

  close(why: string): void {
    this.end({ kind: 'local', why });
  }

  private flush(): void {
    this.flushing = undefined;
    if (this.closed || this.pending.length === 0) return;
    const text = this.pending;
    this.pending = '';
    this.socket.write(text);
    if (this.socket.writableLength > this.maxBufferedBytes) this.end({ kind: 'overflow' });
  }

  private received(text: string): void {
    if (this.closed) return;
    const error = this.decoder.push(text, (message) => {
      if (!this.closed) this.onMessage(message);
    });
    if (error) this.end({ kind: 'frame', error });
  }

  private end(reason: LinkCloseReason): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    // A clean local close delivers what was sent before it (queued here or in the kernel); everything else is cut.
    if (reason.kind === 'local') this.socket.end(this.pending);
    else this.socket.destroy();
    this.pending = '';
    this.socket.setTimeout(1000, () => this.socket.destroy());
    this.onClose(reason);
  }
}
