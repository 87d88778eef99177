/** Guest-physical memory as the device packages see it (see HELPERS.md): live views, never copies. */
export interface GuestMemory {
  /** Guest-physical [gpa, gpa + length) as a live view, or undefined if any byte of it is outside guest
   * RAM or the range spans two RAM regions. */
  view(gpa: number, length: number): Uint8Array | undefined;
}

/** One contiguous range of guest RAM. */
export interface RamRange {
  readonly guestPhysAddr: number;
  readonly size: number;
  readonly bytes: Uint8Array;
}

/** GuestMemory over a set of non-overlapping RAM ranges (a VM's memory regions). */
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
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0) return undefined;
    const range = this.find(gpa);
    if (!range) return undefined;
    const start = gpa - range.guestPhysAddr;
    if (length > range.size - start) return undefined;
    if (range.bytes.length !== range.size) return undefined; // unmapped (closed) region
    return range.bytes.subarray(start, start + length);
  }
}
