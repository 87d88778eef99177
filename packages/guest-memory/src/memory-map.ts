import { type GuestMemory, isGuestRange } from './guest-memory.js';

/** One contiguous range of guest RAM. */
export interface RamRange {
  readonly guestPhysAddr: number;
  readonly size: number;
  /** The range's bytes; a length other than `size` means the backing memory is gone (unmapped). */
  readonly bytes: Uint8Array;
}

/**
 * GuestMemory over a set of non-overlapping RAM ranges (a VM's memory regions). A view never spans two
 * ranges, even adjacent ones.
 */
export class GuestMemoryMap implements GuestMemory {
  #ranges: RamRange[] = [];

  get ranges(): readonly RamRange[] {
    return this.#ranges;
  }

  add(range: RamRange): void {
    const overlapping = this.#ranges.find(
      (r) => range.guestPhysAddr < r.guestPhysAddr + r.size && r.guestPhysAddr < range.guestPhysAddr + range.size,
    );
    if (overlapping) {
      throw new RangeError(
        `guest memory [0x${range.guestPhysAddr.toString(16)}, 0x${(range.guestPhysAddr + range.size).toString(16)}) ` +
          `overlaps [0x${overlapping.guestPhysAddr.toString(16)}, 0x${(overlapping.guestPhysAddr + overlapping.size).toString(16)})`,
      );
    }
    this.#ranges = [...this.#ranges, range].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
  }

  remove(range: RamRange): void {
    this.#ranges = this.#ranges.filter((r) => r !== range);
  }

  /** The range holding `gpa`, if any. */
  find(gpa: number): RamRange | undefined {
    let low = 0;
    let high = this.#ranges.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const range = this.#ranges[mid];
      if (gpa < range.guestPhysAddr) high = mid - 1;
      else if (gpa >= range.guestPhysAddr + range.size) low = mid + 1;
      else return range;
    }
    return undefined;
  }

  view(gpa: number, length: number): Uint8Array | undefined {
    if (!isGuestRange(gpa, length)) return undefined;
    const range = this.find(gpa);
    if (!range) return undefined;
    const start = gpa - range.guestPhysAddr;
    if (length > range.size - start) return undefined;
    if (range.bytes.length !== range.size) return undefined; // unmapped (closed) region
    return range.bytes.subarray(start, start + length);
  }
}
