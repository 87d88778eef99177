import type { ChainReader, ChainWriter } from '@hype/virtio';

/** Smallest segment a ByteQueue allocates: small writes and small packets are coalesced into it. */
export const SEGMENT_BYTES = 16 * 1024;

interface Segment {
  readonly buf: Uint8Array;
  start: number;
  end: number;
  /** Handed out (as a view) by `shift`: never appended to or reused again. */
  sealed: boolean;
}

/**
 * A FIFO of bytes in segments of at least SEGMENT_BYTES. Small pushes are copied into the free tail of
 * the last segment, so the number of objects held grows with the bytes held, not with the number of
 * pushes (a guest sending one-byte packets, or a host writing one byte at a time, cannot make the host
 * hold one object per byte). What it holds is `length` bytes plus at most one partly filled segment.
 */
export class ByteQueue {
  private segs: Segment[] = [];
  private head = 0;
  private bytes = 0;

  /** Bytes held. */
  get length(): number {
    return this.bytes;
  }

  /** Copy `src` in. */
  push(src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const seg = this.reserve(src.length - done);
      const n = Math.min(seg.buf.length - seg.end, src.length - done);
      seg.buf.set(src.subarray(done, done + n), seg.end);
      seg.end += n;
      done += n;
    }
    this.bytes += src.length;
  }

  /** Copy up to `n` bytes out of a chain's readable buffers (guest memory). Returns how many. */
  pushFrom(reader: ChainReader, n: number): number {
    let done = 0;
    while (done < n) {
      const seg = this.reserve(n - done);
      const want = Math.min(seg.buf.length - seg.end, n - done);
      const got = reader.read(seg.buf.subarray(seg.end, seg.end + want));
      seg.end += got;
      done += got;
      if (got < want) break;
    }
    this.bytes += done;
    return done;
  }

  /** Move up to `n` bytes into a chain's writable buffers (guest memory). Returns how many. */
  writeTo(writer: ChainWriter, n: number): number {
    let done = 0;
    while (done < n && this.head < this.segs.length) {
      const seg = this.segs[this.head];
      const take = Math.min(seg.end - seg.start, n - done);
      const wrote = take > 0 ? writer.write(seg.buf.subarray(seg.start, seg.start + take)) : 0;
      seg.start += wrote;
      done += wrote;
      if (seg.start === seg.end) {
        if (this.head === this.segs.length - 1 && !seg.sealed) {
          // The only segment: keep its buffer for the next pushes.
          seg.start = 0;
          seg.end = 0;
          break;
        }
        this.head++;
      }
      if (wrote < take) break;
    }
    this.bytes -= done;
    this.compact();
    return done;
  }

  /**
   * Remove and return the next contiguous piece, or undefined. The piece is the queue's own memory (a
   * view it never touches again) when it fills at least half of its segment, else a copy: a consumer
   * that keeps many small pieces never pins more than twice their bytes (Node streams count a chunk's
   * length, not the size of the buffer behind it).
   */
  shift(): Uint8Array | undefined {
    while (this.head < this.segs.length) {
      const seg = this.segs[this.head];
      const n = seg.end - seg.start;
      if (n === 0) {
        this.head++;
        continue;
      }
      let piece: Uint8Array;
      if (n * 2 >= seg.buf.length) {
        seg.sealed = true;
        piece = seg.buf.subarray(seg.start, seg.end);
        seg.start = seg.end;
        this.head++;
      } else {
        piece = seg.buf.slice(seg.start, seg.end);
        seg.start = seg.end;
        if (this.head === this.segs.length - 1 && !seg.sealed) {
          seg.start = 0;
          seg.end = 0; // the only segment: keep it for the next pushes
        } else {
          this.head++;
        }
      }
      this.bytes -= piece.length;
      this.compact();
      return piece;
    }
    this.compact();
    return undefined;
  }

  /** Drop everything. */
  clear(): void {
    this.segs = [];
    this.head = 0;
    this.bytes = 0;
  }

  private reserve(want: number): Segment {
    const tail = this.segs.length > this.head ? this.segs[this.segs.length - 1] : undefined;
    if (tail !== undefined && !tail.sealed && tail.end < tail.buf.length) return tail;
    const seg: Segment = { buf: new Uint8Array(Math.max(SEGMENT_BYTES, want)), start: 0, end: 0, sealed: false };
    this.segs.push(seg);
    return seg;
  }

  private compact(): void {
    if (this.head === this.segs.length) {
      this.segs = [];
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 >= this.segs.length) {
      this.segs = this.segs.slice(this.head);
      this.head = 0;
    }
  }
}
