export interface ByteBatcherOptions {
  /** Most bytes held for the sink; bytes pushed beyond it are dropped and counted. Default 1 MiB. */
  limit?: number;
  /** Called when `push` may be called again after it returned false. */
  onReady?(): void;
  /** Told once, at the first dropped byte. */
  warn?(message: string): void;
}

/**
 * Collects single bytes (the UART transmits one per port write) and hands them on in one chunk per
 * event-loop turn, so console output is not one write() per character.
 *
 * Bounded like the virtio console's transmit path: once the sink returns false nothing more is written
 * until `sinkDrained()`, and `push` returns false (so the UART keeps THR full and the guest's driver
 * waits) until the sink has taken the held bytes; it also does so once half the limit is waiting within
 * one turn. A guest that writes on regardless fills the buffer up to the limit, then loses bytes.
 */
export class ByteBatcher {
  private buffer = new Uint8Array(256);
  private length = 0;
  private scheduled = false;
  private sinkFull = false;
  /** push() returned false: onReady is owed. */
  private stalled = false;
  private droppedBytes = 0;
  private closed = false;
  private readonly limit: number;

  constructor(
    /** Returning false (only false) says the sink is full: call sinkDrained() when it is not. */
    private readonly flushTo: (bytes: Uint8Array) => unknown,
    private readonly options: ByteBatcherOptions = {},
  ) {
    this.limit = Math.max(2, options.limit ?? 1024 * 1024);
  }

  /** Bytes waiting for the sink. */
  get pending(): number {
    return this.length;
  }

  /** Bytes dropped because the sink stayed full past the limit. */
  get dropped(): number {
    return this.droppedBytes;
  }

  /** Queues a byte. False: stop sending until onReady (the byte itself was kept, unless past the limit). */
  push(byte: number): boolean {
    if (this.length >= this.limit) {
      if (this.droppedBytes++ === 0) {
        this.options.warn?.(`serial console: the console output is not draining; guest output beyond ${this.limit} bytes is dropped`);
      }
      this.stalled = true;
      return false;
    }
    if (this.length === this.buffer.length) {
      const bigger = new Uint8Array(Math.min(this.limit, this.buffer.length * 2));
      bigger.set(this.buffer);
      this.buffer = bigger;
    }
    this.buffer[this.length++] = byte;
    if (!this.scheduled && !this.sinkFull) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    if (this.sinkFull || this.length >= this.limit / 2) {
      this.stalled = true;
      return false;
    }
    return true;
  }

  /**
   * The producer is gone (the VM closed): held output goes out now (the VM's run() resolves right after
   * its teardown, and a CLI may exit then), or once the sink drains; onReady is not called again.
   */
  close(): void {
    this.closed = true;
    if (this.length > 0) this.flush();
  }

  /** The sink can take more (e.g. its stream's 'drain'). */
  sinkDrained(): void {
    this.sinkFull = false;
    this.flush();
  }

  flush(): void {
    this.scheduled = false;
    if (this.sinkFull) return;
    if (this.length > 0) {
      const out = this.buffer.slice(0, this.length);
      this.length = 0;
      if (this.buffer.length > 64 * 1024) this.buffer = new Uint8Array(256);
      if (this.flushTo(out) === false) this.sinkFull = true;
    }
    if (!this.sinkFull && this.stalled && !this.closed) {
      this.stalled = false;
      this.options.onReady?.();
    }
  }
}

/**
 * Host input waiting for a receiver with limited room (the UART's 64-byte FIFO): `write` queues,
 * `feed` hands over as much as the receiver takes; call it again when the receiver has room.
 */
export class InputQueue {
  private readonly chunks: Uint8Array[] = [];

  /** `take` returns how many of the bytes it accepted. */
  constructor(private readonly take: (bytes: Uint8Array) => number) {}

  get buffered(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes.slice());
    this.feed();
  }

  feed(): void {
    while (this.chunks.length > 0) {
      const head = this.chunks[0];
      const taken = this.take(head);
      if (taken >= head.length) this.chunks.shift();
      else {
        this.chunks[0] = head.subarray(taken);
        return;
      }
    }
  }
}
