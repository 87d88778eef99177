import { E820_RAM, E820_RESERVED } from './bootparam.js';
import { LAYOUT, guestRamRegions } from './layout.js';

export interface E820Entry {
  addr: number;
  size: number;
  /** E820_RAM (1) or E820_RESERVED (2). */
  type: number;
}

/**
 * The BIOS-style memory map for a guest with `memBytes` of RAM laid out by `guestRamRegions`: usable RAM
 * below 0x9fc00, the EBDA (MP table) and the legacy 640 KiB-1 MiB hole reserved, RAM from 1 MiB to the
 * PCI hole at 3 GiB, and the rest of the RAM from 4 GiB.
 */
export function buildE820(memBytes: number): E820Entry[] {
  const [low, ...high] = guestRamRegions(memBytes);
  const map: E820Entry[] = [
    { addr: 0, size: LAYOUT.lowRamEnd, type: E820_RAM },
    { addr: LAYOUT.lowRamEnd, size: LAYOUT.highMemStart - LAYOUT.lowRamEnd, type: E820_RESERVED },
  ];
  if (low.size > LAYOUT.highMemStart) {
    map.push({ addr: LAYOUT.highMemStart, size: low.size - LAYOUT.highMemStart, type: E820_RAM });
  }
  for (const r of high) map.push({ addr: r.gpa, size: r.size, type: E820_RAM });
  return map;
}
