import { type GuestMemory, guestView } from '../memory.js';

/**
 * Hands out guest-physical ranges from [start, end), front to back, never reusing them: buffer space
 * for test chains. Each range is aligned to `align` (default 16, enough for descriptor tables) and
 * at least one byte long, so two allocations never share an address. Throws when the range is used up
 * (a test bug, not a device one).
 */
export class BumpAllocator {
  private nextAddr: number;

  constructor(
    readonly memory: GuestMemory,
    readonly start: number,
    readonly end: number,
  ) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new RangeError(`BumpAllocator: bad range [${start}, ${end})`);
    }
    this.nextAddr = start;
  }

  /** The next free address (before alignment). */
  get next(): number {
    return this.nextAddr;
  }

  /** Bytes left. */
  get remaining(): number {
    return this.end - this.nextAddr;
  }

  /**
   * A fresh range of `len` bytes. `fill`: bytes copied to its start, or a byte value for all of it;
   * without it the range keeps whatever guest RAM held there.
   */
  alloc(len: number, fill?: Uint8Array | number, align = 16): number {
    if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`BumpAllocator: bad length ${len}`);
    if (!Number.isSafeInteger(align) || align < 1 || (align & (align - 1)) !== 0) throw new RangeError(`BumpAllocator: alignment ${align} is not a power of two`);
    const addr = Math.ceil(this.nextAddr / align) * align;
    const after = addr + Math.max(len, 1);
    if (after > this.end) throw new Error(`BumpAllocator: ${len} bytes do not fit (${this.end - this.nextAddr} of [0x${this.start.toString(16)}, 0x${this.end.toString(16)}) left)`);
    if (fill !== undefined && len > 0) {
      const view = guestView(this.memory, addr, len);
      if (view === undefined) throw new Error(`BumpAllocator: [0x${addr.toString(16)}, +${len}) is not guest RAM`);
      if (typeof fill === 'number') view.fill(fill);
      else view.set(fill.subarray(0, len));
    }
    this.nextAddr = after;
    return addr;
  }

  /** Forget every allocation (the memory keeps its contents). */
  reset(): void {
    this.nextAddr = this.start;
  }
}
