/**
 * One connection to the agent, as every request uses it: HELLO sent at once (the request right behind
 * it), HELLO_ACK checked, the agent's frames decoded and passed on, the client's frames written with the
 * stream's backpressure, and the end (a final frame, a failure, or the agent going away) reported once.
 */
import { AgentError } from './errors.js';
import { AGENT_FRAMES, encodeFrame, FrameDecoder, PROTOCOL_VERSION, type Frame, type FrameOf } from './protocol.js';
import type { AgentStream } from './stream.js';

/** What HELLO_ACK said. */
export interface AgentInfo {
  /** The protocol version of the connection (1). */
  readonly version: number;
  /** The largest frame length the agent accepts. */
  readonly maxFrame: number;
  /** STDIN bytes the client may have unacknowledged. */
  readonly stdinWindow: number;
  /** The agent's description, e.g. `hype-agent (protocol 1; Linux 6.1.0 x86_64)`. */
  readonly agent: string;
}

export interface SessionHandlers {
  /** Every frame after HELLO_ACK, until the session ends. */
  frame(frame: Frame): void;
  /** The session failed (once; not after `complete()`). */
  fail(error: AgentError): void;
  hello?(info: AgentInfo): void;
  /** The stream took everything queued after it had been full (senders may continue). */
  writable?(): void;
}

export interface SessionOptions {
  readonly client: string;
  readonly helloTimeoutMs: number;
}

/** The client's own queue above which senders wait (`canSend` false). */
const SEND_HIGH_WATER = 64 * 1024;
/** Writes are cut into pieces of this size, so no single write overfills a stream with a hard limit. */
const WRITE_SLICE = 64 * 1024;
/** After the final frame: how long the client waits for the stream to close before destroying it. */
const CLOSE_GRACE_MS = 10_000;

type Timer = ReturnType<typeof setTimeout>;

function unref(timer: Timer): Timer {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

/** An ERROR frame as an AgentError: `protocol` for the agent's protocol errors, else `remote`. */
export function remoteError(frame: FrameOf<'ERROR'>): AgentError {
  const code = frame.code !== '' ? frame.code : frame.errno !== 0 ? `errno ${frame.errno}` : undefined;
  return new AgentError(frame.op === 'protocol' ? 'protocol' : 'remote', `hype-agent: ${frame.message}${code !== undefined ? ` (${code})` : ''}`, {
    errno: frame.errno,
    code: frame.code !== '' ? frame.code : undefined,
    op: frame.op,
  });
}

export class Session {
  info: AgentInfo | undefined;
  private readonly decoder = new FrameDecoder();
  private readonly out: Uint8Array[] = [];
  private outBytes = 0;
  private blocked = false;
  private state: 'open' | 'done' | 'failed' = 'open';
  private timer: Timer | undefined;

  constructor(
    private readonly stream: AgentStream,
    private readonly handlers: SessionHandlers,
    options: SessionOptions,
  ) {
    stream.onData((bytes) => this.receive(bytes));
    stream.onEnd(() => this.lost(undefined));
    stream.onClose((error) => this.lost(error));
    stream.onDrain(() => {
      this.blocked = false;
      this.flush();
      if (this.state === 'open' && !this.blocked && this.outBytes < SEND_HIGH_WATER) this.handlers.writable?.();
    });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.info === undefined) this.fail(new AgentError('timeout', `hype-agent: no HELLO_ACK within ${options.helloTimeoutMs} ms`));
    }, options.helloTimeoutMs);
    this.send({ type: 'HELLO', minVersion: PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION, client: options.client });
  }

  get open(): boolean {
    return this.state === 'open';
  }

  /** More data may be sent now without growing the client's own queue past its mark. */
  get canSend(): boolean {
    return this.state === 'open' && !this.blocked && this.outBytes < SEND_HIGH_WATER;
  }

  send(frame: Frame): void {
    if (this.state !== 'open') return;
    const bytes = encodeFrame(frame);
    this.out.push(bytes);
    this.outBytes += bytes.length;
    this.flush();
  }

  /** The request got its final frame: half-close, and let the stream close (destroyed if it does not). */
  complete(): void {
    if (this.state !== 'open') return;
    this.state = 'done';
    this.clearTimer();
    this.out.length = 0;
    this.outBytes = 0;
    this.stream.end();
    this.timer = unref(setTimeout(() => this.stream.destroy(), CLOSE_GRACE_MS));
  }

  /** Ends the session with `error` (reported to the handlers) and resets the connection. */
  fail(error: AgentError): void {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.clearTimer();
    this.out.length = 0;
    this.outBytes = 0;
    this.stream.destroy();
    this.handlers.fail(error);
  }

  pause(): void {
    this.stream.pause?.();
  }

  resume(): void {
    this.stream.resume?.();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    while (this.state === 'open' && !this.blocked && this.out.length > 0) {
      const head = this.out[0];
      let piece = head;
      if (head.length > WRITE_SLICE) {
        piece = head.subarray(0, WRITE_SLICE);
        this.out[0] = head.subarray(WRITE_SLICE);
      } else {
        this.out.shift();
      }
      this.outBytes -= piece.length;
      if (!this.stream.write(piece)) this.blocked = true;
    }
  }

  private lost(error: Error | undefined): void {
    if (this.state === 'done') {
      this.clearTimer();
      return;
    }
    if (this.state !== 'open') return;
    const why = error !== undefined ? `the connection to the agent failed: ${error.message}` : 'the agent closed the connection';
    this.fail(new AgentError('connection-reset', `hype-agent: ${why} before the request finished`, { cause: error }));
  }

  private receive(bytes: Uint8Array): void {
    if (this.state !== 'open') return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(bytes);
    } catch (error) {
      this.fail(error instanceof AgentError ? error : new AgentError('protocol', String(error)));
      return;
    }
    for (const frame of frames) {
      if (this.state !== 'open') return;
      this.dispatch(frame);
    }
  }

  private dispatch(frame: Frame): void {
    if (!AGENT_FRAMES.has(frame.type)) {
      this.fail(new AgentError('protocol', `hype-agent sent ${frame.type}, a frame only the host sends`));
      return;
    }
    if (this.info === undefined) {
      if (frame.type === 'ERROR') {
        this.fail(remoteError(frame));
      } else if (frame.type !== 'HELLO_ACK') {
        this.fail(new AgentError('protocol', `hype-agent sent ${frame.type} before HELLO_ACK`));
      } else if (frame.version !== PROTOCOL_VERSION) {
        this.fail(new AgentError('protocol', `hype-agent chose protocol version ${frame.version}; this client speaks ${PROTOCOL_VERSION}`));
      } else if (frame.stdinWindow < 1) {
        this.fail(new AgentError('protocol', 'hype-agent offered an empty stdin window'));
      } else {
        this.clearTimer();
        this.info = { version: frame.version, maxFrame: frame.maxFrame, stdinWindow: frame.stdinWindow, agent: frame.agent };
        this.handlers.hello?.(this.info);
      }
      return;
    }
    if (frame.type === 'HELLO_ACK') {
      this.fail(new AgentError('protocol', 'hype-agent sent a second HELLO_ACK'));
      return;
    }
    this.handlers.frame(frame);
  }
}
