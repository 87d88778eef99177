/**
 * Collects single bytes (the UART transmits one per port write) and hands them on in one chunk per
 * event-loop turn, so console output is not one write() per character.
 */
export class ByteBatcher {
  private buffer = new Uint8Array(256);
  private length = 0;
  private scheduled = false;

  constructor(private readonly flushTo: (bytes: Uint8Array) => unknown) {}

  push(byte: number): void {
    if (this.length === this.buffer.length) {
      const bigger = new Uint8Array(this.buffer.length * 2);
      bigger.set(this.buffer);
      this.buffer = bigger;
    }
    this.buffer[this.length++] = byte;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.length === 0) return;
    const out = this.buffer.slice(0, this.length);
    this.length = 0;
    this.flushTo(out);
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
