import { describe, expect, it } from 'vitest';
import { MAX_VIRTUAL_ACCESS, readLinear, readLinearU64, translate } from '../src/cpu/paging.js';
import { fetchInstructionBytes, instructionPointer } from '../src/cpu/insn-fetch.js';
import { CR4_LA57, type VcpuSegment } from '../src/cpu/state.js';
import { LONG_MODE_PAGING, PageTableBuilder, flatMemory } from './helpers/memory.js';

const KERNEL_TEXT = 0xffff_ffff_8100_0000n;

function longMode(levels: 4 | 5 = 4) {
  const ram = new Uint8Array(8 << 20);
  const mem = flatMemory(ram);
  const pt = new PageTableBuilder(ram, 0x10_0000, levels);
  const regs = { ...LONG_MODE_PAGING, cr3: BigInt(pt.root), cr4: LONG_MODE_PAGING.cr4 | (levels === 5 ? CR4_LA57 : 0n) };
  return { ram, mem, pt, regs };
}

describe('translate', () => {
  it('is the identity (32-bit wrap) without paging', () => {
    const mem = flatMemory(new Uint8Array(4096));
    const regs = { cr0: 0x11n, cr3: 0n, cr4: 0n, efer: 0n };
    expect(translate(mem, regs, 0x1234n)).toEqual({ gpa: 0x1234, pageSize: 4096 });
    expect(translate(mem, regs, 0x1_0000_1234n)?.gpa).toBe(0x1234);
  });

  it('walks 4-level tables for 4 KiB, 2 MiB and 1 GiB pages', () => {
    const { mem, pt, regs } = longMode();
    pt.map(KERNEL_TEXT, 0x40_0000, 0x20_0000);
    pt.map(0x7fff_f000_0000n, 0x30_5000, 4096);
    pt.map(0xffff_8880_0000_0000n, 0, 0x4000_0000);
    expect(translate(mem, regs, KERNEL_TEXT + 0x1_2345n)).toEqual({ gpa: 0x41_2345, pageSize: 0x20_0000 });
    expect(translate(mem, regs, 0x7fff_f000_0abcn)).toEqual({ gpa: 0x30_5abc, pageSize: 4096 });
    expect(translate(mem, regs, 0xffff_8880_0765_4321n)).toEqual({ gpa: 0x765_4321, pageSize: 0x4000_0000 });
    expect(translate(mem, regs, 0x7fff_f000_1000n)).toBeUndefined();
  });

  it('walks 5-level tables when CR4.LA57 is set', () => {
    const { mem, pt, regs } = longMode(5);
    pt.map(0xff11_0000_0000_0000n, 0x20_3000);
    expect(translate(mem, regs, 0xff11_0000_0000_0010n)?.gpa).toBe(0x20_3010);
  });

  it('rejects non-canonical addresses', () => {
    const { mem, pt, regs } = longMode();
    pt.map(0n, 0x20_0000);
    expect(translate(mem, regs, 0x10n)?.gpa).toBe(0x20_0010);
    expect(translate(mem, regs, 0x0001_0000_0000_0010n)).toBeUndefined();
    expect(translate(mem, regs, 0x8000_0000_0000_0010n)).toBeUndefined();
  });

  it('fails cleanly when a table pointer leaves guest RAM', () => {
    const ram = new Uint8Array(0x20_0000);
    const mem = flatMemory(ram);
    const dv = new DataView(ram.buffer);
    dv.setBigUint64(0x1000, 0x000f_ffff_ffff_f003n, true); // PML4[0] -> far beyond RAM
    expect(translate(mem, { ...LONG_MODE_PAGING, cr3: 0x1000n }, 0x1000n)).toBeUndefined();
    expect(translate(mem, { ...LONG_MODE_PAGING, cr3: 0xffff_f000n }, 0x1000n)).toBeUndefined();
  });

  it('walks 32-bit paging, including 4 MiB PSE pages', () => {
    const ram = new Uint8Array(0x80_0000);
    const mem = flatMemory(ram);
    const dv = new DataView(ram.buffer);
    const pd = 0x1000;
    const ptab = 0x2000;
    dv.setUint32(pd + 0x300 * 4, ptab | 3, true); // 0xc0000000
    dv.setUint32(ptab + 5 * 4, 0x7000 | 3, true);
    dv.setUint32(pd + 1 * 4, 0x40_0000 | 0x83, true); // 4 MiB page at 0x400000
    const regs = { cr0: 0x8000_0011n, cr3: BigInt(pd), cr4: 0x10n, efer: 0n };
    expect(translate(mem, regs, 0xc000_5123n)?.gpa).toBe(0x7123);
    expect(translate(mem, regs, 0x40_1234n)).toEqual({ gpa: 0x40_1234, pageSize: 4 << 20 });
  });

  it('walks PAE paging', () => {
    const ram = new Uint8Array(0x40_0000);
    const mem = flatMemory(ram);
    const dv = new DataView(ram.buffer);
    dv.setBigUint64(0x1000 + 3 * 8, 0x2001n, true); // PDPTE[3] (0xc0000000)
    dv.setBigUint64(0x2000 + 0, 0x3001n, true); // PDE[0] -> PT
    dv.setBigUint64(0x3000 + 2 * 8, 0x9003n, true); // PTE[2]
    dv.setBigUint64(0x2000 + 8, 0x20_0083n, true); // PDE[1]: 2 MiB page
    const regs = { cr0: 0x8000_0011n, cr3: 0x1000n, cr4: 0x20n, efer: 0n };
    expect(translate(mem, regs, 0xc000_2010n)?.gpa).toBe(0x9010);
    expect(translate(mem, regs, 0xc020_0004n)?.gpa).toBe(0x20_0004);
  });
});

describe('readLinear', () => {
  it('reads across a page boundary onto a non-contiguous physical page', () => {
    const { ram, mem, pt, regs } = longMode();
    pt.map(0x40_0000n, 0x30_0000);
    pt.map(0x40_1000n, 0x20_0000);
    ram.set([1, 2, 3, 4], 0x30_0ffc);
    ram.set([5, 6, 7, 8], 0x20_0000);
    expect([...readLinear(mem, regs, 0x40_0ffcn, 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(readLinearU64(mem, regs, 0x40_0ffcn)).toBe(0x0807060504030201n);
  });

  it('stops at the first unmapped page', () => {
    const { ram, mem, pt, regs } = longMode();
    pt.map(0x40_0000n, 0x30_0000);
    ram.set([9, 9], 0x30_0ffe);
    expect([...readLinear(mem, regs, 0x40_0ffen, 8)]).toEqual([9, 9]);
    expect(readLinearU64(mem, regs, 0x40_0ffen)).toBeUndefined();
  });

  it('caps the length it will read', () => {
    const { mem, regs } = longMode();
    expect(readLinear({ view: (_g, l) => new Uint8Array(l) }, { ...regs, cr0: 0x11n }, 0n, 1 << 30).length).toBe(MAX_VIRTUAL_ACCESS);
    expect(readLinear(mem, regs, 0n, -5).length).toBe(0);
  });
});

const seg = (over: Partial<VcpuSegment>): VcpuSegment => ({
  base: 0n, limit: 0xffff, selector: 0, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0, ...over,
});

describe('fetchInstructionBytes', () => {
  it('reads 15 bytes at RIP in 64-bit mode, ignoring the CS base', () => {
    const { ram, mem, pt, regs } = longMode();
    pt.map(KERNEL_TEXT, 0x40_0000, 0x20_0000);
    ram.set([0xf3, 0x48, 0x0f, 0xb8, 0xc1], 0x40_0100);
    const bytes = fetchInstructionBytes(mem, { rip: KERNEL_TEXT + 0x100n }, { ...regs, cs: seg({ l: 1, base: 0x1234n }) });
    expect(bytes.length).toBe(15);
    expect([...bytes.subarray(0, 5)]).toEqual([0xf3, 0x48, 0x0f, 0xb8, 0xc1]);
  });

  it('uses CS.base + IP in real mode (reset vector)', () => {
    const sregs = { cr0: 0x10n, cr3: 0n, cr4: 0n, efer: 0n, cs: seg({ base: 0xffff_0000n, selector: 0xf000 }) };
    expect(instructionPointer({ rip: 0xfff0n }, sregs)).toBe(0xffff_fff0n);
    const ram = new Uint8Array(0x10_0000);
    ram[0x7c00] = 0xfa;
    const bytes = fetchInstructionBytes(flatMemory(ram), { rip: 0x7c00n }, { ...sregs, cs: seg({ base: 0n }) });
    expect(bytes[0]).toBe(0xfa);
  });

  it('returns fewer bytes when the code runs into an unmapped page, none if RIP is unmapped', () => {
    const { mem, pt, regs } = longMode();
    pt.map(0x40_0000n, 0x30_0000);
    const cs = seg({ l: 1 });
    expect(fetchInstructionBytes(mem, { rip: 0x40_0ffbn }, { ...regs, cs }).length).toBe(5);
    expect(fetchInstructionBytes(mem, { rip: 0x50_0000n }, { ...regs, cs }).length).toBe(0);
  });
});
