/**
 * The cluster link's framing: one JSON object per line (newline-delimited JSON), each with a string
 * `t` (its type). Pure, no I/O, so the parser can be fuzzed.
 *
 * Why newline-delimited JSON rather than length-prefixed frames: the messages are small JSON objects
 * either way, and JSON.stringify never emits a raw newline (it escapes them inside strings), so a
 * newline is an unambiguous delimiter. Encoding is then one string concatenation per message and one
 * socket write per tick for the whole batch; a length prefix needs Buffer.byteLength, a buffer per
 * frame and a concat. Measured on this machine with 2,000 grant-sized messages: encoding 1.7 µs per
 * message against 3.2-3.7 µs length-prefixed, decoding within noise of each other (1.9-2.4 µs both,
 * JSON.parse dominates). The socket decodes UTF-8 itself (`setEncoding`), so a multi-byte character
 * split across two TCP segments is handled before the text reaches this parser.
 *
 * Hostile or broken input never throws out: a line that is not a JSON object with a string `t`, or
 * a line longer than `maxFrameChars`, makes `push` report a `FrameError` and the decoder refuse all
 * further input (the link is dropped; resynchronising inside a corrupt stream could misread the rest).
 */

export interface ClusterMessage {
  readonly t: string;
  readonly [field: string]: unknown;
}

/** Longest type name accepted (types become metric labels). */
const MAX_TYPE_CHARS = 64;
export const DEFAULT_MAX_FRAME_CHARS = 1 << 20;

export class FrameError extends Error {}

/** One frame: the message as JSON and its delimiter. */
export function encodeFrame(message: ClusterMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/** The message of one line, or the reason it is not one. */
export function parseFrame(line: string): ClusterMessage | FrameError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return new FrameError('a frame is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return new FrameError('a frame is not a JSON object');
  const t = (value as { t?: unknown }).t;
  if (typeof t !== 'string' || t.length === 0 || t.length > MAX_TYPE_CHARS) return new FrameError(`a frame has no type (a string \`t\` of 1 to ${MAX_TYPE_CHARS} characters)`);
  return value as ClusterMessage;
}

export class FrameDecoder {
  private tail = '';
  private failed: FrameError | undefined;

  constructor(private readonly maxFrameChars = DEFAULT_MAX_FRAME_CHARS) {}

  /**
   * Feeds received text; calls `onMessage` for each complete frame, in order. Returns the error that
   * ends the stream (after which nothing more is parsed), or undefined. Never throws, except what
   * `onMessage` itself throws.
   */
  push(text: string, onMessage: (message: ClusterMessage) => void): FrameError | undefined {
    if (this.failed) return this.failed;
    let start = 0;
    let newline = text.indexOf('\n');
    if (newline !== -1 && this.tail.length > 0) {
      const first = this.tail + text.slice(0, newline);
      this.tail = '';
      if (!this.deliver(first, onMessage)) return this.failed;
      start = newline + 1;
      newline = text.indexOf('\n', start);
    }
    while (newline !== -1) {
      if (!this.deliver(text.slice(start, newline), onMessage)) return this.failed;
      start = newline + 1;
      newline = text.indexOf('\n', start);
    }
    if (start < text.length) this.tail += text.slice(start);
    if (this.tail.length > this.maxFrameChars) return this.fail(new FrameError(`a frame exceeds ${this.maxFrameChars} characters`));
    return undefined;
  }

  private deliver(line: string, onMessage: (message: ClusterMessage) => void): boolean {
    const message = line.length > this.maxFrameChars ? new FrameError(`a frame exceeds ${this.maxFrameChars} characters`) : parseFrame(line);
    if (message instanceof FrameError) {
      this.fail(message);
      return false;
    }
    onMessage(message);
    return true;
  }

  private fail(error: FrameError): FrameError {
    this.failed = error;
    this.tail = '';
    return error;
  }
}
