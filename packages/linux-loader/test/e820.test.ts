import { describe, expect, it } from 'vitest';
import { LAYOUT, buildE820, guestRamRegions } from '@hype/linux-loader';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const RAM = 1;
const RESERVED = 2;

describe('guestRamRegions', () => {
  it('keeps RAM below the PCI hole in one region and moves the rest above 4 GiB', () => {
    expect(guestRamRegions(256 * MiB)).toEqual([{ gpa: 0, size: 256 * MiB }]);
    expect(guestRamRegions(3 * GiB)).toEqual([{ gpa: 0, size: 3 * GiB }]);
    expect(guestRamRegions(3 * GiB + MiB)).toEqual([
      { gpa: 0, size: 3 * GiB },
      { gpa: 4 * GiB, size: MiB },
    ]);
    expect(guestRamRegions(8 * GiB)).toEqual([
      { gpa: 0, size: 3 * GiB },
      { gpa: 4 * GiB, size: 5 * GiB },
    ]);
  });

  it('rejects sizes that are not whole pages or below 1 MiB', () => {
    expect(() => guestRamRegions(MiB - 4096)).toThrow(RangeError);
    expect(() => guestRamRegions(16 * MiB + 1)).toThrow(RangeError);
  });
});

describe('buildE820', () => {
  it('describes a small guest: low RAM, the reserved EBDA/BIOS hole, RAM from 1 MiB', () => {
    expect(buildE820(16 * MiB)).toEqual([
      { addr: 0, size: 0x9fc00, type: RAM },
      { addr: 0x9fc00, size: 0x100000 - 0x9fc00, type: RESERVED },
      { addr: 0x100000, size: 15 * MiB, type: RAM },
    ]);
  });

  it('reserves the MP table area', () => {
    const map = buildE820(64 * MiB);
    const covering = map.find((e) => LAYOUT.mpTable >= e.addr && LAYOUT.mpTable < e.addr + e.size);
    expect(covering?.type).toBe(RESERVED);
  });

  it('has no RAM entry above 1 MiB when the guest has exactly 1 MiB', () => {
    expect(buildE820(MiB).filter((e) => e.addr >= MiB)).toEqual([]);
  });

  it('splits around the PCI hole for more than 3 GiB', () => {
    for (const mem of [3 * GiB + 4096, 4 * GiB, 6 * GiB + 512 * MiB]) {
      const map = buildE820(mem);
      expect(map.at(-2)).toEqual({ addr: MiB, size: 3 * GiB - MiB, type: RAM });
      expect(map.at(-1)).toEqual({ addr: 4 * GiB, size: mem - 3 * GiB, type: RAM });
      // Total RAM described equals the guest's RAM less the reserved 640 KiB-1 MiB hole.
      const ram = map.filter((e) => e.type === RAM).reduce((a, e) => a + e.size, 0);
      expect(ram).toBe(mem - (0x100000 - 0x9fc00));
      // Nothing in the hole itself.
      expect(map.some((e) => e.addr < 4 * GiB && e.addr + e.size > 3 * GiB)).toBe(false);
    }
  });

  it('keeps entries sorted and non-overlapping for many sizes', () => {
    for (const mem of [2 * MiB, 128 * MiB, GiB, 3 * GiB - 4096, 3 * GiB, 5 * GiB, 64 * GiB]) {
      const map = buildE820(mem);
      for (let i = 1; i < map.length; i++) expect(map[i].addr).toBeGreaterThanOrEqual(map[i - 1].addr + map[i - 1].size);
    }
  });
});
