import { ChainReader, ChainWriter } from '@hype/virtio';
import { type BlockBackend, checkRange } from './backend.js';

/**
 * Positional vectored I/O on an open host file. Node's `fs.promises` FileHandle has exactly this shape;
 * `@hype/virtio-blk/node` opens one (`openFileBackend`). Another runtime can bring its own.
 */
export interface FileHandleLike {
  readv(buffers: Uint8Array[], position: number): Promise<{ bytesRead: number }>;
  writev(buffers: Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  /** fdatasync(2). */
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export interface FileBackendOptions {
  /** Size of the file in bytes, as measured when it was opened. */
  size: number;
  readOnly: boolean;
  /** For error messages. */
  path: string;
}

const ZERO_CHUNK = 1 << 20;
let zeroChunk: Uint8Array | undefined;

/**
 * A disk image in a host file. Reads and writes go straight between the file and the guest's buffers
 * (readv/writev at a position: no copy, no shared file offset, any number in flight). FLUSH is
 * fdatasync, so what the guest flushed is on the host disk when the flush completes.
 *
 * There is no DISCARD: Node has no fallocate(PUNCH_HOLE), and a discard that neither frees space nor is
 * needed for correctness would only make mkfs/fstrim in the guest write zeroes over a sparse image.
 * WRITE_ZEROES writes real zeroes (write_zeroes_may_unmap = 0).
 */
export class FileBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly path: string;
  readonly writeZeroesMayUnmap = false;
  private closed = false;

  constructor(
    private readonly handle: FileHandleLike,
    options: FileBackendOptions,
  ) {
    if (!Number.isSafeInteger(options.size) || options.size < 0) throw new RangeError(`disk ${options.path}: bad size ${options.size}`);
    this.size = options.size;
    this.readOnly = options.readOnly;
    this.path = options.path;
  }

  async read(offset: number, dest: readonly Uint8Array[]): Promise<void> {
    this.checkOpen('read');
    const out = new ChainWriter(dest);
    checkRange(`disk ${this.path} read`, offset, out.remaining, this.size);
    let pos = offset;
    // readv may stop short (a signal, a huge request): go on from where it stopped.
    while (out.remaining > 0) {
      const { bytesRead } = await this.handle.readv(out.peekViews(), pos);
      if (bytesRead <= 0) throw new Error(`disk ${this.path}: unexpected end of file at byte ${pos} (the file shrank?)`);
      pos += out.skip(bytesRead);
    }
  }

  async write(offset: number, src: readonly Uint8Array[]): Promise<void> {
    this.checkOpen('write');
    if (this.readOnly) throw new Error(`disk ${this.path}: write to a read-only disk`);
    const data = new ChainReader(src);
    checkRange(`disk ${this.path} write`, offset, data.remaining, this.size);
    let pos = offset;
    while (data.remaining > 0) {
      const { bytesWritten } = await this.handle.writev(data.peekViews(), pos);
      if (bytesWritten <= 0) throw new Error(`disk ${this.path}: write at byte ${pos} made no progress`);
      pos += data.skip(bytesWritten);
    }
  }

  async flush(): Promise<void> {
    this.checkOpen('flush');
    await this.handle.datasync();
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen('write zeroes');
    checkRange(`disk ${this.path} write zeroes`, offset, length, this.size);
    zeroChunk ??= new Uint8Array(ZERO_CHUNK);
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const n = Math.min(ZERO_CHUNK, end - pos);
      await this.write(pos, [zeroChunk.subarray(0, n)]);
      pos += n;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private checkOpen(op: string): void {
    if (this.closed) throw new Error(`disk ${this.path}: ${op} after close`);
  }
}
