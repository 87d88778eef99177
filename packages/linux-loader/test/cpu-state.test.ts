import { describe, expect, it } from 'vitest';
import { BOOT_CS, BOOT_DS, LAYOUT, flatMemory, gdtEntry, segmentFromDescriptor, writeIdentityPageTables } from '@hype/linux-loader';
import { writeGdt } from '../src/gdt.js';

const u64 = (ram: Uint8Array, at: number) => new DataView(ram.buffer).getBigUint64(at, true);

describe('GDT', () => {
  it('encodes descriptors like the kernel GDT_ENTRY (values as in Firecracker)', () => {
    expect(gdtEntry(0xa09b, 0, 0xfffff)).toBe(0x00af9b000000ffffn);
    expect(gdtEntry(0xc093, 0, 0xfffff)).toBe(0x00cf93000000ffffn);
    expect(gdtEntry(0x808b, 0, 0xfffff)).toBe(0x008f8b000000ffffn);
    expect(gdtEntry(0x9b, 0x12345678, 0xabcde)).toBe(0x120a9b345678bcden);
  });

  it('decodes descriptors into KVM segments (limit scaled by G)', () => {
    const code = segmentFromDescriptor(gdtEntry(0xa09b, 0x100000, 0xfffff), 0x10);
    expect(code).toEqual({ base: 0x100000, limit: 0xffffffff, selector: 0x10, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
    const small = segmentFromDescriptor(gdtEntry(0x0093, 0, 0xffff), 0x18);
    expect(small.limit).toBe(0xffff);
    expect(small.g).toBe(0);
    expect(small.db).toBe(0);
    expect(segmentFromDescriptor(0n, 0).unusable).toBe(1);
  });

  it('writes __BOOT_CS at 0x10 and __BOOT_DS at 0x18 (boot.rst 64-bit protocol) and a 16-byte TSS', () => {
    const ram = new Uint8Array(0x1000).fill(0xcc);
    const seg = writeGdt(flatMemory(ram));
    expect(BOOT_CS).toBe(0x10);
    expect(BOOT_DS).toBe(0x18);
    expect(u64(ram, LAYOUT.gdt)).toBe(0n);
    expect(u64(ram, LAYOUT.gdt + 0x08)).toBe(0n);
    expect(u64(ram, LAYOUT.gdt + 0x10)).toBe(0x00af9b000000ffffn);
    expect(u64(ram, LAYOUT.gdt + 0x18)).toBe(0x00cf93000000ffffn);
    expect(u64(ram, LAYOUT.gdt + 0x20)).toBe(0x008f8b000000ffffn);
    expect(u64(ram, LAYOUT.gdt + 0x28)).toBe(0n);
    expect(seg.gdt).toEqual({ base: 0x500, limit: 47 });
    expect(LAYOUT.gdt + 48).toBeLessThanOrEqual(LAYOUT.idt);
    expect(seg.idt).toEqual({ base: LAYOUT.idt, limit: 7 });
    expect(u64(ram, LAYOUT.idt)).toBe(0n);
    expect(seg.code).toMatchObject({ selector: 0x10, l: 1, db: 0, type: 0xb, s: 1, present: 1 });
    expect(seg.data).toMatchObject({ selector: 0x18, l: 0, db: 1, type: 0x3, s: 1, present: 1, limit: 0xffffffff });
    expect(seg.tss).toMatchObject({ selector: 0x20, type: 0xb, s: 0, present: 1 });
  });
});

describe('identity page tables', () => {
  it('maps the low 4 GiB 1:1 with 2 MiB pages', () => {
    const ram = new Uint8Array(0x10000).fill(0xcc);
    const cr3 = writeIdentityPageTables(flatMemory(ram));
    expect(cr3).toBe(0x9000);
    expect(u64(ram, 0x9000)).toBe(0xa003n);
    for (let i = 1; i < 512; i++) expect(u64(ram, 0x9000 + i * 8)).toBe(0n);
    for (let g = 0; g < 4; g++) expect(u64(ram, 0xa000 + g * 8)).toBe(BigInt(0xb000 + g * 0x1000 + 3));
    for (let i = 4; i < 512; i++) expect(u64(ram, 0xa000 + i * 8)).toBe(0n);
    for (let i = 0; i < 2048; i++) expect(u64(ram, 0xb000 + i * 8)).toBe(BigInt(i) * 0x200000n + 0x83n);
    expect(ram[0xf000]).toBe(0xcc); // past the last page directory
  });

  it('translates addresses like the MMU would', () => {
    const ram = new Uint8Array(0x10000);
    const cr3 = writeIdentityPageTables(flatMemory(ram));
    const walk = (va: number) => {
      const pml4e = u64(ram, cr3 + ((va / 2 ** 39) & 511) * 8);
      const pdpte = u64(ram, Number(pml4e & ~0xfffn) + ((va / 2 ** 30) & 511) * 8);
      const pde = u64(ram, Number(pdpte & ~0xfffn) + (Math.floor(va / 2 ** 21) & 511) * 8);
      expect(pde & 0x81n).toBe(0x81n);
      return Number(pde & ~0x1fffffn) + (va % 2 ** 21);
    };
    for (const va of [0, 0x7000, 0x100200, 0x1000000, 0x7fff_f123, 0xbfff_ffff, 0xfec0_0000, 0xffff_ffff]) expect(walk(va)).toBe(va);
  });
});
