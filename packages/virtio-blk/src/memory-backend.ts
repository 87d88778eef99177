import { type BlockBackend, checkRange } from './backend.js';

export interface MemoryBackendOptions {
  /** Refuse writes (the device then offers VIRTIO_BLK_F_RO). */
  readOnly?: boolean;
  /** Initial contents, copied; its length must not exceed the size. */
  contents?: Uint8Array;
}

/** A disk held in a host Uint8Array: scratch disks, tests, and the reference for other backends. */
export class MemoryBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly writeZeroesMayUnmap = false;
  /** The disk's bytes (live; tests and callers may inspect them). */
  readonly bytes: Uint8Array;
  private closed = false;

  constructor(size: number, options: MemoryBackendOptions = {}) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`memory disk: size ${size} is not a byte count`);
    this.size = size;
    this.readOnly = options.readOnly ?? false;
    try {
      this.bytes = new Uint8Array(size);
    } catch (e) {
      // The runtime's "Invalid typed array length" / "Array buffer allocation failed", with the disk named.
      throw new RangeError(`memory disk: cannot hold ${size} bytes in host memory (${(e as Error).message}); use a smaller size or a disk image file`, { cause: e });
    }
    if (options.contents) {
      if (options.contents.byteLength > size) {
        throw new RangeError(`memory disk: ${options.contents.byteLength} bytes of contents exceed the ${size}-byte size`);
      }
      this.bytes.set(options.contents);
    }
  }

  async read(offset: number, dest: readonly Uint8Array[]): Promise<void> {
    this.checkOpen('read');
    let pos = offset;
    for (const d of dest) {
      checkRange('memory disk read', pos, d.byteLength, this.size);
      d.set(this.bytes.subarray(pos, pos + d.byteLength));
      pos += d.byteLength;
    }
  }

  async write(offset: number, src: readonly Uint8Array[]): Promise<void> {
    this.checkOpen('write');
    if (this.readOnly) throw new Error('memory disk: write to a read-only disk');
    let pos = offset;
    for (const s of src) {
      checkRange('memory disk write', pos, s.byteLength, this.size);
      this.bytes.set(s, pos);
      pos += s.byteLength;
    }
  }

  async flush(): Promise<void> {
    this.checkOpen('flush');
  }

  async discard(offset: number, length: number): Promise<void> {
    // Zeroing is one valid "anything" a discarded range may read back as, and keeps tests deterministic.
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen('write zeroes');
    if (this.readOnly) throw new Error('memory disk: write zeroes to a read-only disk');
    checkRange('memory disk write zeroes', offset, length, this.size);
    this.bytes.fill(0, offset, offset + length);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(op: string): void {
    if (this.closed) throw new Error(`memory disk: ${op} after close`);
  }
}
