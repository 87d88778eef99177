import type { ChainError, ChainErrorKind } from './errors.js';
import { type GuestMemory, guestView, joinAddress } from './memory.js';
import { DESC_KNOWN_FLAGS, Desc, DescFlag, MAX_CHAIN_BYTES } from './ring-layout.js';

/** One guest buffer of a chain, as the guest described it (after validation). */
export interface ChainBuffer {
  /** Guest-physical address. */
  readonly addr: number;
  /** Length in bytes. */
  readonly len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE) rather than device-readable. */
  readonly writable: boolean;
}

/**
 * A cursor over a list of byte views, consumed front to back. Shared by ChainReader and ChainWriter.
 * Zero-length views are skipped.
 */
class ViewCursor {
  private viewIndex = 0;
  private offsetInView = 0;
  private consumed = 0;

  constructor(
    private readonly views: readonly Uint8Array[],
    readonly length: number,
  ) {}

  get position(): number {
    return this.consumed;
  }

  get remaining(): number {
    return this.length - this.consumed;
  }

  /** Visit the next min(n, remaining) bytes as live subviews, advancing past them. */
  private advance(n: number, visit: (view: Uint8Array, done: number) => void): number {
    let want = Math.max(0, Math.min(Math.floor(n), this.remaining));
    let done = 0;
    while (want > 0 && this.viewIndex < this.views.length) {
      const view = this.views[this.viewIndex];
      const available = view.length - this.offsetInView;
      if (available <= 0) {
        this.viewIndex++;
        this.offsetInView = 0;
        continue;
      }
      const take = Math.min(available, want);
      visit(view.subarray(this.offsetInView, this.offsetInView + take), done);
      done += take;
      want -= take;
      this.offsetInView += take;
      if (this.offsetInView === view.length) {
        this.viewIndex++;
        this.offsetInView = 0;
      }
    }
    this.consumed += done;
    return done;
  }

  copyOut(dest: Uint8Array): number {
    return this.advance(dest.length, (v, done) => dest.set(v, done));
  }

  copyIn(src: Uint8Array): number {
    return this.advance(src.length, (v, done) => v.set(src.subarray(done, done + v.length)));
  }

  take(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.advance(n, (v) => out.push(v));
    return out;
  }

  /** Live subviews covering the next min(n, remaining) bytes, without advancing. */
  peek(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let want = Math.max(0, Math.min(Math.floor(n), this.remaining));
    let offset = this.offsetInView;
    for (let i = this.viewIndex; want > 0 && i < this.views.length; i++, offset = 0) {
      const view = this.views[i];
      const take = Math.min(view.length - offset, want);
      if (take <= 0) continue;
      out.push(view.subarray(offset, offset + take));
      want -= take;
    }
    return out;
  }

  skip(n: number): number {
    return this.advance(n, () => {});
  }
}

/** Total byte length of a list of views. */
function totalLength(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.length;
  return n;
}

/**
 * Reads the device-readable part of a chain, front to back (a gather list). Also a cursor over any list
 * of byte views (`length` defaults to their total).
 */
export class ChainReader {
  private readonly cursor: ViewCursor;

  /** `length` (at most the views' total, which is the default) is how many bytes the cursor covers. */
  constructor(views: readonly Uint8Array[], length?: number) {
    const total = totalLength(views);
    this.cursor = new ViewCursor(views, length === undefined ? total : Math.min(length, total));
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.cursor.remaining;
  }

  /** Bytes read (or skipped, or taken as views) so far. */
  get consumed(): number {
    return this.cursor.position;
  }

  /** Copy up to `dest.length` bytes into `dest`; returns how many were copied. */
  read(dest: Uint8Array): number {
    return this.cursor.copyOut(dest);
  }

  /** A copy of exactly the next `n` bytes, or `undefined` (nothing consumed) if fewer remain. */
  readExact(n: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) return undefined;
    const out = new Uint8Array(n);
    this.cursor.copyOut(out);
    return out;
  }

  /** Live views of guest memory covering the next min(n, remaining) bytes (e.g. for pwritev). */
  views(n: number = this.remaining): Uint8Array[] {
    return this.cursor.take(n);
  }

  /**
   * The same views as `views(n)` without consuming them: for I/O that may transfer fewer bytes than asked
   * (a short pwritev), followed by `skip(done)`.
   */
  peekViews(n: number = this.remaining): Uint8Array[] {
    return this.cursor.peek(n);
  }

  /** Skip up to `n` bytes; returns how many were skipped. */
  skip(n: number): number {
    return this.cursor.skip(n);
  }
}

/**
 * Writes the device-writable part of a chain, front to back (a scatter list). Also a cursor over any
 * list of byte views (`length` defaults to their total).
 */
export class ChainWriter {
  private readonly cursor: ViewCursor;

  /** `length` (at most the views' total, which is the default) is how many bytes the cursor covers. */
  constructor(views: readonly Uint8Array[], length?: number) {
    const total = totalLength(views);
    this.cursor = new ViewCursor(views, length === undefined ? total : Math.min(length, total));
  }

  /** Writable bytes not yet written. */
  get remaining(): number {
    return this.cursor.remaining;
  }

  /**
   * Bytes written so far, counting views handed out by `views()` and skipped bytes: the value the
   * device reports as the used length.
   */
  get written(): number {
    return this.cursor.position;
  }

  /** Copy up to `src.length` bytes from `src`; returns how many fitted. */
  write(src: Uint8Array): number {
    return this.cursor.copyIn(src);
  }

  /** Live views of guest memory covering the next min(n, remaining) bytes (e.g. for preadv). */
  views(n: number = this.remaining): Uint8Array[] {
    return this.cursor.take(n);
  }

  /**
   * The same views as `views(n)` without consuming them (nothing counts as written yet): for I/O that may
   * transfer fewer bytes than asked (a short preadv), followed by `skip(done)`.
   */
  peekViews(n: number = this.remaining): Uint8Array[] {
    return this.cursor.peek(n);
  }

  /** Skip up to `n` bytes (left as they are); returns how many were skipped. */
  skip(n: number): number {
    return this.cursor.skip(n);
  }
}

/**
 * Whatever a device hands back to `SplitQueue.addUsed`: a chain it popped (valid or not). Holds the
 * queue it came from so completions after a reset (a new queue object) are recognised and dropped.
 */
export interface UsedToken {
  /** Head descriptor index: what goes into used.ring[].id. */
  readonly head: number;
  /** The queue instance that produced it (identity only). */
  readonly owner: object;
}

/** A validated descriptor chain. Its buffers were all inside guest RAM when it was popped. */
export class DescriptorChain implements UsedToken {
  readonly kind = 'chain' as const;
  /** True once added to the used ring (a second addUsed is refused). */
  completed = false;

  constructor(
    readonly owner: object,
    /** Index of the queue it came from. */
    readonly queueIndex: number,
    readonly head: number,
    /** Every buffer in chain order: device-readable ones first, then device-writable ones. */
    readonly buffers: readonly ChainBuffer[],
    /** Live views of guest memory, one per buffer, same order as `buffers`. */
    readonly views: readonly Uint8Array[],
    /** Total bytes of the device-readable buffers. */
    readonly readableLength: number,
    /** Total bytes of the device-writable buffers. */
    readonly writableLength: number,
  ) {}

  /** Number of device-readable buffers (they come first in `buffers`). */
  get readableCount(): number {
    let n = 0;
    while (n < this.buffers.length && !this.buffers[n].writable) n++;
    return n;
  }

  /** Live views of the device-readable buffers, in order. */
  readableViews(): Uint8Array[] {
    return this.views.slice(0, this.readableCount);
  }

  /** Live views of the device-writable buffers, in order. */
  writableViews(): Uint8Array[] {
    return this.views.slice(this.readableCount);
  }

  /** A fresh reader over the device-readable bytes. */
  reader(): ChainReader {
    return new ChainReader(this.readableViews(), this.readableLength);
  }

  /** A fresh writer over the device-writable bytes. */
  writer(): ChainWriter {
    return new ChainWriter(this.writableViews(), this.writableLength);
  }
}

/** A chain the guest made available that failed validation. Return it with `addUsed(chain, 0)`. */
export class InvalidChain implements UsedToken {
  readonly kind = 'invalid' as const;
  completed = false;

  constructor(
    readonly owner: object,
    readonly queueIndex: number,
    readonly head: number,
    readonly error: ChainError,
  ) {}
}

export type PoppedChain = DescriptorChain | InvalidChain;

/** Everything parseChain needs from the queue. */
export interface ChainSource {
  readonly memory: GuestMemory;
  /** The queue's descriptor table (16 * queueSize bytes, live). */
  readonly descTable: DataView;
  readonly queueSize: number;
  readonly queueIndex: number;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  readonly indirect: boolean;
  /**
   * Most buffers one chain may have, direct and indirect together. The driver MUST NOT make a chain
   * longer than the queue size (§2.7.5.3.1, also for indirect tables); a device may ask for less.
   */
  readonly maxChainBuffers: number;
}

export interface ParsedChain {
  readonly buffers: ChainBuffer[];
  readonly views: Uint8Array[];
  readonly readableLength: number;
  readonly writableLength: number;
}

const EMPTY = new Uint8Array(0);

/**
 * Walk and validate the chain starting at descriptor `head` (which the caller checked is < queueSize).
 * Reads each descriptor exactly once (the guest may change it concurrently; only the copy is trusted).
 * Terminates after at most 2 * queueSize + 1 descriptor reads, and keeps at most `maxChainBuffers`
 * buffers, so the host memory one chain holds is bounded whatever the guest wrote.
 */
export function parseChain(src: ChainSource, head: number): ParsedChain | ChainError {
  const fail = (kind: ChainErrorKind, detail: string): ChainError => ({
    kind,
    message: `virtio queue ${src.queueIndex}: invalid chain at head ${head}: ${detail}`,
  });

  let table = src.descTable;
  let tableSize = src.queueSize;
  let inIndirect = false;
  let index = head;
  let steps = 0;
  const buffers: ChainBuffer[] = [];
  const views: Uint8Array[] = [];
  let readableLength = 0;
  let writableLength = 0;
  let sawWritable = false;

  for (;;) {
    const where = inIndirect ? `indirect descriptor ${index}` : `descriptor ${index}`;
    if (index >= tableSize) {
      return fail('next-out-of-range', `${where} outside a table of ${tableSize}`);
    }
    if (++steps > tableSize) {
      return fail('loop', `more than ${tableSize} descriptors (the chain loops)`);
    }
    const base = index * Desc.SIZE;
    const addrLow = table.getUint32(base + Desc.ADDR, true);
    const addrHigh = table.getUint32(base + Desc.ADDR + 4, true);
    const len = table.getUint32(base + Desc.LEN, true);
    const flags = table.getUint16(base + Desc.FLAGS, true);
    const next = table.getUint16(base + Desc.NEXT, true);
    const addr = joinAddress(addrLow, addrHigh);
    const addrText = addr >= 0 ? `0x${addr.toString(16)}` : `0x${addrHigh.toString(16)}${addrLow.toString(16).padStart(8, '0')}`;

    if ((flags & ~DESC_KNOWN_FLAGS) !== 0) {
      return fail('unknown-flags', `${where} has flags 0x${flags.toString(16)}`);
    }

    if ((flags & DescFlag.INDIRECT) !== 0) {
      if (!src.indirect) return fail('indirect-not-negotiated', `${where} is INDIRECT without VIRTIO_F_INDIRECT_DESC`);
      if (inIndirect) return fail('nested-indirect', `${where} is INDIRECT inside an indirect table`);
      if ((flags & DescFlag.NEXT) !== 0) return fail('indirect-with-next', `${where} has both INDIRECT and NEXT`);
      if (len === 0 || len % Desc.SIZE !== 0) {
        return fail('indirect-bad-length', `${where}: indirect table length ${len} is not a positive multiple of ${Desc.SIZE}`);
      }
      const entries = len / Desc.SIZE;
      if (buffers.length + entries > src.maxChainBuffers) {
        const before = buffers.length > 0 ? ` after ${buffers.length} direct buffers` : '';
        return fail('indirect-too-large', `${where}: indirect table of ${entries} entries${before} (a chain has at most ${src.maxChainBuffers})`);
      }
      const tableView = addr >= 0 ? guestView(src.memory, addr, len) : undefined;
      if (tableView === undefined) {
        return fail('indirect-table-outside-memory', `${where}: indirect table [${addrText}, +${len}) is not guest RAM`);
      }
      table = new DataView(tableView.buffer, tableView.byteOffset, tableView.byteLength);
      tableSize = entries;
      inIndirect = true;
      index = 0;
      steps = 0;
      continue;
    }

    const writable = (flags & DescFlag.WRITE) !== 0;
    if (writable) {
      sawWritable = true;
      writableLength += len;
    } else {
      if (sawWritable) {
        return fail('readable-after-writable', `${where} is device-readable after a device-writable one`);
      }
      readableLength += len;
    }
    if (readableLength + writableLength > MAX_CHAIN_BYTES) {
      return fail('chain-too-long', `total length above ${MAX_CHAIN_BYTES} bytes at ${where}`);
    }
    // A zero-length buffer is allowed anywhere below the address limit (nothing is ever accessed).
    const view = len === 0 ? (addr >= 0 ? EMPTY : undefined) : addr >= 0 ? guestView(src.memory, addr, len) : undefined;
    if (view === undefined) {
      return fail('buffer-outside-memory', `${where}: buffer [${addrText}, +${len}) is not guest RAM`);
    }
    if (buffers.length >= src.maxChainBuffers) {
      return fail('too-many-buffers', `more than ${src.maxChainBuffers} buffers at ${where}`);
    }
    buffers.push({ addr, len, writable });
    views.push(view);

    if ((flags & DescFlag.NEXT) === 0) break;
    index = next;
  }

  return { buffers, views, readableLength, writableLength };
}
