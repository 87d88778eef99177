import type { DescriptorTable, Segment } from './cpu-state.js';
import { LAYOUT } from './layout.js';
import { type GuestMemory, dataView, mustView } from './memory.js';

/**
 * The boot GDT. boot.rst (64-bit protocol) wants flat 4 GiB __BOOT_CS = 0x10 (execute/read) and
 * __BOOT_DS = 0x18 (read/write) with CS = __BOOT_CS and DS/ES/SS = __BOOT_DS. KVM also wants a usable TR
 * (a busy 64-bit TSS), which in long mode takes a 16-byte descriptor: slots 4 and 5.
 */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;

/** Descriptor flags as Linux's GDT_ENTRY() takes them: access byte in bits 0-7, G/DB/L/AVL in bits 12-15. */
export const GDT_FLAGS = {
  code64: 0xa09b, // G, L, present, DPL0, code, execute/read, accessed
  data: 0xc093, // G, DB, present, DPL0, data, read/write, accessed
  tss64: 0x808b, // G, present, system, busy 64-bit TSS
} as const;

/** An 8-byte segment descriptor (Linux's GDT_ENTRY(flags, base, limit)). */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base);
  const l = BigInt(limit);
  const fl = BigInt(flags);
  return (
    ((b & 0xff00_0000n) << 32n) |
    ((fl & 0xf0ffn) << 40n) |
    ((l & 0x000f_0000n) << 32n) |
    ((b & 0x00ff_ffffn) << 16n) |
    (l & 0xffffn)
  );
}

/** The KVM segment register contents for descriptor `entry` loaded through `selector`. */
export function segmentFromDescriptor(entry: bigint, selector: number): Segment {
  const bit = (n: bigint) => Number((entry >> n) & 1n);
  const rawLimit = Number(((entry >> 32n) & 0xf_0000n) | (entry & 0xffffn));
  const g = bit(55n);
  const present = bit(47n);
  return {
    base: Number(((entry >> 32n) & 0xff00_0000n) | ((entry >> 16n) & 0xff_ffffn)),
    limit: g ? rawLimit * 0x1000 + 0xfff : rawLimit,
    selector,
    type: Number((entry >> 40n) & 0xfn),
    present,
    dpl: Number((entry >> 45n) & 3n),
    db: bit(54n),
    s: bit(44n),
    l: bit(53n),
    g,
    avl: bit(52n),
    unusable: present ? 0 : 1,
  };
}

/** The 6 GDT slots: null, unused, code64 (0x10), data (0x18), TSS low (0x20), TSS high (0x28). */
export function bootGdt(): bigint[] {
  return [
    0n,
    0n,
    gdtEntry(GDT_FLAGS.code64, 0, 0xfffff),
    gdtEntry(GDT_FLAGS.data, 0, 0xfffff),
    gdtEntry(GDT_FLAGS.tss64, 0, 0xfffff),
    0n,
  ];
}

export interface BootSegments {
  gdt: DescriptorTable;
  idt: DescriptorTable;
  code: Segment;
  data: Segment;
  tss: Segment;
}

/** Write the GDT and an empty IDT; return the descriptor tables and segments to load. */
export function writeGdt(mem: GuestMemory): BootSegments {
  const table = bootGdt();
  const gdtBytes = mustView(mem, LAYOUT.gdt, table.length * 8, 'boot GDT');
  const dv = dataView(gdtBytes);
  table.forEach((e, i) => dv.setBigUint64(i * 8, e, true));
  mustView(mem, LAYOUT.idt, 8, 'boot IDT').fill(0);
  return {
    gdt: { base: LAYOUT.gdt, limit: table.length * 8 - 1 },
    idt: { base: LAYOUT.idt, limit: 7 },
    code: segmentFromDescriptor(table[BOOT_CS / 8], BOOT_CS),
    data: segmentFromDescriptor(table[BOOT_DS / 8], BOOT_DS),
    tss: segmentFromDescriptor(table[BOOT_TSS / 8], BOOT_TSS),
  };
}
