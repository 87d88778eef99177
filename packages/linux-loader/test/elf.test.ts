import { describe, expect, it } from 'vitest';
import { LoaderError, findSymbol, flatMemory, loadElf, parseElf, physicalEntry, virtToPhys } from '@hype/linux-loader';
import { makeElf, smallVmlinux } from './fixtures.js';

const MiB = 1 << 20;

describe('parseElf / loadElf', () => {
  it('loads PT_LOAD segments at p_paddr and zeroes their BSS', () => {
    const elf = smallVmlinux();
    const ram = new Uint8Array(32 * MiB).fill(0xee, 0xff0000, 0x1300000); // only the pages the test looks at
    const loaded = loadElf(flatMemory(ram), elf, 'vmlinux');
    expect(loaded.entry).toBe(0x1000000);
    expect(loaded.start).toBe(0x1000000);
    expect(loaded.end).toBe(0x1205000);
    expect(ram[0x1000000]).toBe(1);
    expect(ram[0x1000001]).toBe(8);
    expect(ram[0x1002fff]).toBe((0x2fff * 7 + 1) & 0xff);
    expect(ram[0x1003000]).toBe(0xee); // between segments: untouched
    expect(ram[0x1200000]).toBe(0xdd);
    expect(ram[0x1200fff]).toBe(0xdd);
    expect(ram.subarray(0x1201000, 0x1205000).every((b) => b === 0)).toBe(true); // BSS
    expect(ram[0x1205000]).toBe(0xee);
    expect(loaded.pvhEntry).toBe(0x1000100);
  });

  it('translates a virtual e_entry through its segment', () => {
    const elf = makeElf({
      entry: 0xffffffff81000040n,
      segments: [{ vaddr: 0xffffffff81000000n, paddr: 0x200000, data: new Uint8Array(0x100) }],
    });
    const image = parseElf(elf, 'k');
    expect(physicalEntry(image)).toBe(0x200040);
    expect(virtToPhys(image, 0xffffffff810000ffn)).toBe(0x2000ff);
    expect(virtToPhys(image, 0xffffffff81000100n)).toBeUndefined();
  });

  it('rejects an entry outside every segment', () => {
    const elf = makeElf({ entry: 0x5000000n, segments: [{ vaddr: 0x1000000n, paddr: 0x1000000, data: new Uint8Array(16) }] });
    expect(() => loadElf(flatMemory(new Uint8Array(32 * MiB)), elf, '/v')).toThrow(/entry point 0x5000000 lies in no loadable segment/);
  });

  it('rejects what is not an x86-64 executable, naming the file', () => {
    const seg = [{ vaddr: 0x100000n, paddr: 0x100000, data: new Uint8Array(16) }];
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(64), /kernel \/v: not an ELF file/],
      [makeElf({ entry: 0n, segments: seg, elfClass: 1 }), /a 32-bit ELF/],
      [makeElf({ entry: 0n, segments: seg, machine: 183 }), /machine 183, need x86-64/],
      [makeElf({ entry: 0n, segments: seg, type: 3 }), /not an executable/],
      [makeElf({ entry: 0n, segments: [] }), /no program headers/],
      [makeElf({ entry: 0n, segments: [{ ...seg[0], type: 4 }] }), /no loadable/],
      [smallVmlinux().subarray(0, 40), /truncated ELF header/],
      [smallVmlinux().subarray(0, 100), /truncated \(program headers/],
      [smallVmlinux().subarray(0, 0x2000), /truncated \(segment 0 needs file bytes up to/],
    ];
    for (const [bytes, re] of cases) {
      let error: unknown;
      try {
        parseElf(bytes, '/v');
      } catch (e) {
        error = e;
      }
      expect(error, String(re)).toBeInstanceOf(LoaderError);
      expect((error as Error).message).toMatch(re);
    }
  });

  it('rejects a segment with p_filesz > p_memsz and one outside guest RAM', () => {
    const elf = makeElf({ entry: 0x100000n, segments: [{ vaddr: 0x100000n, paddr: 0x100000, data: new Uint8Array(32), memsz: 16 }] });
    expect(() => parseElf(elf, 'k')).toThrow(/p_filesz > p_memsz/);
    const high = makeElf({ entry: 0x3000000n, segments: [{ vaddr: 0x3000000n, paddr: 0x3000000, data: new Uint8Array(32) }] });
    expect(() => loadElf(flatMemory(new Uint8Array(16 * MiB)), high, '/v')).toThrow(/outside guest RAM/);
  });
});

describe('findSymbol', () => {
  it('finds defined symbols by exact name, with their physical address', () => {
    const elf = smallVmlinux();
    const pf = findSymbol(elf, 'asm_exc_page_fault');
    expect(pf).toEqual({ name: 'asm_exc_page_fault', value: 0xffffffff81001230n, size: 0x20, paddr: 0x1001230 });
    expect(findSymbol(elf, 'startup_64')?.paddr).toBe(0x1000000);
    expect(findSymbol(elf, 'asm_exc_page')).toBeUndefined(); // a prefix is not a match
    expect(findSymbol(elf, 'undefined_thing')).toBeUndefined(); // SHN_UNDEF
    expect(findSymbol(elf, 'nope')).toBeUndefined();
  });

  it('returns undefined for an ELF without a symbol table', () => {
    const elf = makeElf({ entry: 0x100000n, segments: [{ vaddr: 0x100000n, paddr: 0x100000, data: new Uint8Array(16) }] });
    expect(findSymbol(elf, 'startup_64')).toBeUndefined();
  });
});
