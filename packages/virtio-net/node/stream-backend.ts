import { type Socket, createConnection } from 'node:net';
import { Listeners, type NetBackend } from '../src/backend.js';
import { STREAM_LENGTH_BYTES, STREAM_MAX_FRAME, StreamFrameDecoder, type StreamResync } from '../src/stream-framing.js';

export interface StreamBackendOptions {
  /** Longest frame accepted from the peer; a longer length prefix closes the connection. Default STREAM_MAX_FRAME (65553). */
  readonly maxFrame?: number;
  /** Recover the framing when the peer breaks it (see `StreamResync`); lengths are then never fatal. */
  readonly resync?: StreamResync;
}

/**
 * A `NetBackend` over a connected stream socket speaking QEMU's `-netdev stream` framing (a 4-byte
 * big-endian length, then the Ethernet frame), which passt serves on its Unix socket (`passt --socket
 * PATH`, QEMU's `-netdev stream,addr.type=unix,addr.path=PATH`).
 *
 * - To the peer: `send` writes the length and the frame in one `socket.write`; its return value is
 *   `send`'s (false once Node buffers its high-water mark), and `onWritable` fires on the socket's
 *   `drain`. A frame sent after the connection closed is dropped (`send` returns true so nobody waits).
 * - From the peer: frames are decoded as the socket delivers chunks and passed to `onFrame`. `pause()`
 *   stops the socket (and the frames of the chunk in hand), so the peer sees TCP-like backpressure; what
 *   the backend holds meanwhile is the rest of one chunk, one partial frame (≤ `maxFrame`) and Node's
 *   readable buffer. Without an `onFrame` callback the socket is not read.
 * - A length prefix above `maxFrame` is a protocol error: the connection is destroyed with a
 *   `StreamFrameError`, which `onClose` receives. The peer closing, or an I/O error, also ends in
 *   `onClose` (once).
 */
export class StreamBackend implements NetBackend {
  /** Frames received from the peer and handed to `onFrame`, and frames written to the peer. */
  framesReceived = 0;
  framesSent = 0;
  /** Frames `send` dropped because the connection was closed. */
  framesDropped = 0;

  private readonly decoder: StreamFrameDecoder;
  private readonly frameListeners = new Listeners<[Uint8Array]>();
  private readonly writableListeners = new Listeners<[]>();
  private readonly closeListeners = new Listeners<[Error | undefined]>();
  private paused = false;
  private closedFlag = false;
  private error: Error | undefined;
  private waitingWritable = false;
  private drainScheduled = false;
  private readonly closedPromise: Promise<void>;

  constructor(
    readonly socket: Socket,
    options: StreamBackendOptions = {},
  ) {
    this.decoder = new StreamFrameDecoder(options.maxFrame ?? STREAM_MAX_FRAME, options.resync);
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.closedFlag = true;
        this.closeListeners.emit(this.error);
        this.closeListeners.clear();
        resolve();
      });
    });
    socket.on('error', (error) => {
      this.error ??= error;
    });
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      this.drain();
    });
    socket.on('drain', () => {
      if (!this.waitingWritable || this.closedFlag) return;
      this.waitingWritable = false;
      this.writableListeners.emit();
    });
    if (socket.destroyed) this.closedFlag = true;
    this.updateFlow();
  }

  /** The connection is gone (closed by either side, or failed). */
  get closed(): boolean {
    return this.closedFlag || this.socket.destroyed;
  }

  /** Times the framing was lost and found again (with `resync`), and the bytes skipped. */
  get resyncs(): { count: number; skippedBytes: number } {
    return { count: this.decoder.resyncs, skippedBytes: this.decoder.skippedBytes };
  }

  /** Bytes received and not yet decoded into frames (at most about one socket chunk while paused). */
  get bufferedBytes(): number {
    return this.decoder.bufferedBytes;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) {
      this.framesDropped++;
      return true;
    }
    const out = Buffer.allocUnsafe(STREAM_LENGTH_BYTES + frame.length);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, STREAM_LENGTH_BYTES);
    this.framesSent++;
    const more = this.socket.write(out);
    if (!more) this.waitingWritable = true;
    return more;
  }

  onFrame(callback: (frame: Uint8Array) => void): () => void {
    const remove = this.frameListeners.add(callback);
    this.scheduleDrain();
    return () => {
      remove();
      this.updateFlow();
    };
  }

  onWritable(callback: () => void): () => void {
    return this.writableListeners.add(callback);
  }

  onClose(callback: (error?: Error) => void): () => void {
    return this.closeListeners.add(callback);
  }

  pause(): void {
    this.paused = true;
    this.updateFlow();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // Frames held in the decoder go out on a later turn, never from inside resume().
    this.scheduleDrain();
  }

  /** Destroy the connection; resolves once the socket has closed. */
  close(): Promise<void> {
    this.socket.destroy();
    return this.closedPromise;
  }

  private get reading(): boolean {
    return !this.paused && !this.closed && this.frameListeners.size > 0;
  }

  private updateFlow(): void {
    if (this.closed) return;
    if (this.reading) this.socket.resume();
    else this.socket.pause();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /** Hand decoded frames to the listeners while reading; then let the socket flow (or not). */
  private drain(): void {
    while (this.reading) {
      let frame: Uint8Array | undefined;
      try {
        frame = this.decoder.next();
      } catch (error) {
        this.error ??= error as Error;
        this.socket.destroy(error as Error);
        return;
      }
      if (frame === undefined) break;
      this.framesReceived++;
      this.frameListeners.emit(frame);
    }
    this.updateFlow();
  }
}

export interface ConnectStreamBackendOptions extends StreamBackendOptions {
  /** Milliseconds to wait for the connection. Default 5000. */
  readonly timeoutMs?: number;
}

/**
 * Connect to a `-netdev stream` server on the Unix socket `path` (e.g. passt started with
 * `passt --socket PATH`) and return the backend over it. Rejects with the path and the reason when
 * nothing listens there or the connection does not complete within `timeoutMs`.
 */
export function connectStreamBackend(path: string, options: ConnectStreamBackendOptions = {}): Promise<StreamBackend> {
  if (typeof path !== 'string' || path.length === 0) return Promise.reject(new TypeError('virtio-net: connectStreamBackend needs a socket path'));
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`virtio-net: cannot connect to the stream socket ${path}: ${why}`));
    };
    const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => {
      fail(
        error.code === 'ENOENT'
          ? 'no such socket (is the network backend, e.g. `passt --socket PATH`, running?)'
          : error.code === 'ECONNREFUSED'
            ? 'connection refused (nothing listens there: a stale socket file?)'
            : error.message,
      );
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(new StreamBackend(socket, options));
    });
  });
}
