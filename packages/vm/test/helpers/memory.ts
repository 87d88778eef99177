import type { GuestMemory } from '../../src/cpu/paging.js';

/** Guest RAM over one Uint8Array at guest-physical 0. */
export function flatMemory(bytes: Uint8Array): GuestMemory {
  return {
    view(gpa, length) {
      if (!Number.isSafeInteger(gpa) || gpa < 0 || length < 0 || gpa + length > bytes.length) return undefined;
      return bytes.subarray(gpa, gpa + length);
    },
  };
}

/**
 * Builds x86-64 page tables (4- or 5-level) in guest RAM, allocating tables upward from `tableBase`.
 */
export class PageTableBuilder {
  private next: number;
  readonly root: number;
  private readonly dv: DataView;

  constructor(
    private readonly ram: Uint8Array,
    tableBase: number,
    private readonly levels: 4 | 5 = 4,
  ) {
    this.dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.next = tableBase;
    this.root = this.alloc();
  }

  private alloc(): number {
    const at = this.next;
    this.ram.fill(0, at, at + 4096);
    this.next += 4096;
    return at;
  }

  /** Maps the page containing `gva` to `gpa` with a page of `size` bytes (4 KiB, 2 MiB or 1 GiB). */
  map(gva: bigint, gpa: number, size: 4096 | 0x20_0000 | 0x4000_0000 = 4096): void {
    const leafLevel = size === 4096 ? 1 : size === 0x20_0000 ? 2 : 3;
    let table = this.root;
    for (let level = this.levels; level > leafLevel; level--) {
      const index = Number((gva >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
      const at = table + index * 8;
      let entry = this.dv.getBigUint64(at, true);
      if ((entry & 1n) === 0n) {
        const t = this.alloc();
        entry = BigInt(t) | 0x3n;
        this.dv.setBigUint64(at, entry, true);
      }
      table = Number(entry & 0x000f_ffff_ffff_f000n);
    }
    const index = Number((gva >> BigInt(12 + 9 * (leafLevel - 1))) & 0x1ffn);
    const ps = leafLevel > 1 ? 0x80n : 0n;
    this.dv.setBigUint64(table + index * 8, BigInt(gpa) | ps | 0x3n, true);
  }

  /** Clears the present bit of the leaf mapping `gva` (4 KiB mappings only). */
  unmap4k(gva: bigint): void {
    let table = this.root;
    for (let level = this.levels; level > 1; level--) {
      const index = Number((gva >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
      table = Number(this.dv.getBigUint64(table + index * 8, true) & 0x000f_ffff_ffff_f000n);
    }
    const at = table + Number((gva >> 12n) & 0x1ffn) * 8;
    this.dv.setBigUint64(at, this.dv.getBigUint64(at, true) & ~1n, true);
  }
}

export const LONG_MODE_PAGING = { cr0: 0x8000_0011n, cr4: 0x20n, efer: 0x500n };
