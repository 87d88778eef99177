// QEMU's `-netdev stream` framing, which passt speaks on its Unix socket: each Ethernet frame is a
// 4-byte big-endian length, then the frame. Node-free, so other emulators can use it over their sockets.

/** Bytes of the length prefix. */
export const STREAM_LENGTH_BYTES = 4;
/**
 * The longest frame a stream peer may send: an IP datagram's maximum (65535) plus the Ethernet header and
 * one VLAN tag. passt sends at most its MTU (65520) plus the Ethernet header. A longer length prefix is a
 * protocol error: the connection is closed.
 */
export const STREAM_MAX_FRAME = 65535 + 14 + 4;

/** A frame with its length prefix: one new array. */
export function encodeStreamFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(STREAM_LENGTH_BYTES + frame.length);
  new DataView(out.buffer).setUint32(0, frame.length, false);
  out.set(frame, STREAM_LENGTH_BYTES);
  return out;
}

/** A length prefix above the decoder's maximum. */
export class StreamFrameError extends Error {
  constructor(
    readonly length: number,
    readonly maxFrame: number,
  ) {
    super(`virtio-net stream: the peer sent a frame of ${length} bytes, above the ${maxFrame}-byte maximum`);
    this.name = 'StreamFrameError';
  }
}

/**
 * How a decoder recognises a frame start when its peer may break the framing: every frame the peer sends
 * carries `sourceMac` as its Ethernet source. passt finishes a frame its non-blocking `sendmsg` wrote only
 * in part with a blocking write of the rest; handed a non-blocking descriptor, that write fails (EAGAIN)
 * and the rest of the frame is lost (hype's `startPasst` hands it a blocking one, so this is a safety
 * net; measured before that fix: 575 losses in a 16 MiB download in the nested rig). With this, a length prefix
 * is taken only when a plausible length (at least an Ethernet header, at most `maxFrame`) is followed by
 * a frame whose source is `sourceMac`; otherwise the decoder skips bytes until one is (each skip run is
 * counted in `resyncs`). The frame that was cut short reaches the guest damaged; its checksums fail there
 * and TCP sends it again.
 */
export interface StreamResync {
  readonly sourceMac: Uint8Array;
}

/** Bytes that must have arrived before a length prefix is checked: the prefix and both MAC addresses. */
const RESYNC_PEEK = STREAM_LENGTH_BYTES + 12;

/**
 * Incremental decoder of the stream framing: `push` chunks as they arrive (kept by reference, not
 * copied), `next()` takes the next complete frame. What it holds: the chunks pushed and not yet consumed,
 * plus one partial frame of at most `maxFrame` bytes (allocated when its length prefix arrives, so a
 * length above `maxFrame` fails before any allocation). Zero-length frames are skipped.
 */
export class StreamFrameDecoder {
  readonly maxFrame: number;
  private chunks: Uint8Array[] = [];
  private chunkOffset = 0;
  private buffered = 0;
  private readonly lengthBytes = new Uint8Array(STREAM_LENGTH_BYTES);
  private lengthHave = 0;
  private frame: Uint8Array | undefined;
  private frameHave = 0;
  private failed: StreamFrameError | undefined;
  private readonly resync: StreamResync | undefined;
  private readonly peekBytes = new Uint8Array(RESYNC_PEEK);
  private skipping = false;
  /** Times the decoder lost the framing and skipped bytes to find it again (with `resync` only). */
  resyncs = 0;
  /** Bytes skipped doing so. */
  skippedBytes = 0;

  constructor(maxFrame: number = STREAM_MAX_FRAME, resync?: StreamResync) {
    if (!Number.isInteger(maxFrame) || maxFrame < 1 || maxFrame > 0xffff_ffff) {
      throw new RangeError(`virtio-net stream: maxFrame ${maxFrame} must be an integer in [1, 2^32 - 1]`);
    }
    if (resync !== undefined && (!(resync.sourceMac instanceof Uint8Array) || resync.sourceMac.length !== 6)) {
      throw new RangeError('virtio-net stream: resync.sourceMac must be 6 bytes');
    }
    this.maxFrame = maxFrame;
    this.resync = resync;
  }

  /** Bytes pushed and not yet taken into a frame (the partial frame's bytes are not counted). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** A frame has started (its length prefix, or part of it, arrived) and is not complete. */
  get midFrame(): boolean {
    return this.lengthHave > 0 || this.frame !== undefined;
  }

  push(chunk: Uint8Array): void {
    if (this.failed !== undefined || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame, or undefined when more bytes are needed. Throws `StreamFrameError` for a
   * length prefix above `maxFrame` (and again on every later call: the stream cannot be resynchronised).
   */
  next(): Uint8Array | undefined {
    if (this.failed !== undefined) throw this.failed;
    for (;;) {
      if (this.frame === undefined && this.resync !== undefined && !this.atFrameStart()) return undefined;
      if (this.frame === undefined) {
        this.lengthHave += this.take(this.lengthBytes.subarray(this.lengthHave));
        if (this.lengthHave < STREAM_LENGTH_BYTES) return undefined;
        this.lengthHave = 0;
        const length = new DataView(this.lengthBytes.buffer).getUint32(0, false);
        if (length > this.maxFrame) {
          this.failed = new StreamFrameError(length, this.maxFrame);
          this.chunks = [];
          this.buffered = 0;
          throw this.failed;
        }
        if (length === 0) continue;
        this.frame = new Uint8Array(length);
        this.frameHave = 0;
      }
      this.frameHave += this.take(this.frame.subarray(this.frameHave));
      if (this.frameHave < this.frame.length) return undefined;
      const done = this.frame;
      this.frame = undefined;
      return done;
    }
  }

  /**
   * With `resync`: true once the buffered bytes start with a frame from the peer (skipping bytes that do
   * not); false while fewer than RESYNC_PEEK bytes are there to tell.
   */
  private atFrameStart(): boolean {
    const mac = this.resync!.sourceMac;
    for (;;) {
      if (this.buffered < RESYNC_PEEK) return false;
      this.peek(this.peekBytes);
      const length = new DataView(this.peekBytes.buffer).getUint32(0, false);
      let ok = length >= 14 && length <= this.maxFrame;
      for (let i = 0; ok && i < 6; i++) ok = this.peekBytes[STREAM_LENGTH_BYTES + 6 + i] === mac[i];
      if (ok) {
        this.skipping = false;
        return true;
      }
      if (!this.skipping) this.resyncs++;
      this.skipping = true;
      this.skippedBytes++;
      this.take(this.peekBytes.subarray(0, 1));
    }
  }

  /** Copy the first dest.length buffered bytes into `dest` without consuming them (the caller checked there are enough). */
  private peek(dest: Uint8Array): void {
    let done = 0;
    let offset = this.chunkOffset;
    for (let i = 0; done < dest.length && i < this.chunks.length; i++) {
      const chunk = this.chunks[i];
      const n = Math.min(dest.length - done, chunk.length - offset);
      dest.set(chunk.subarray(offset, offset + n), done);
      done += n;
      offset = 0;
    }
  }

  /** Copy buffered bytes into `dest` (as many as there are); returns how many. */
  private take(dest: Uint8Array): number {
    let done = 0;
    while (done < dest.length && this.chunks.length > 0) {
      const chunk = this.chunks[0];
      const n = Math.min(dest.length - done, chunk.length - this.chunkOffset);
      dest.set(chunk.subarray(this.chunkOffset, this.chunkOffset + n), done);
      done += n;
      this.chunkOffset += n;
      if (this.chunkOffset === chunk.length) {
        this.chunks.shift();
        this.chunkOffset = 0;
      }
    }
    this.buffered -= done;
    return done;
  }
}
