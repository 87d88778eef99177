/**
 * Where everything goes in guest-physical memory (x86-64, Firecracker-like). One place for all of it:
 * @hype/vm builds its memslots from `guestRamRegions`, the loader writes the tables at these addresses and
 * describes the same RAM in the e820 map.
 *
 *   0x0000_0500  GDT (6 entries)            0x0000_0540  IDT (empty, limit 7)
 *   0x0000_7000  zero page (boot_params)    0x0000_8ff0  initial stack pointer (grows down)
 *   0x0000_9000  PML4   0x0000_a000 PDPT    0x0000_b000-0x0000_efff  4 page directories (2 MiB pages)
 *   0x0002_0000  kernel command line        0x0009_fc00  MP table (EBDA, reserved in e820)
 *   0x000a_0000-0x000f_ffff  legacy VGA/BIOS hole (reserved in e820, still backed by RAM); ACPI tables
 *                            at 0x000e_0000 (where Linux also scans for the RSDP), up to 128 KiB
 *   0x0010_0000  bzImage protected-mode code (an ELF vmlinux goes to its own p_paddr, 16 MiB for Linux)
 *   below min(RAM end, 3 GiB, initrd_addr_max)  initrd, at the highest page-aligned address that fits
 *   0xc000_0000-0xffff_ffff  PCI/MMIO hole: IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000, virtio-mmio devices
 *   0x1_0000_0000  RAM beyond 3 GiB continues here
 */
export const LAYOUT = {
  gdt: 0x500,
  idt: 0x540,
  zeroPage: 0x7000,
  bootStack: 0x8ff0,
  pml4: 0x9000,
  pdpt: 0xa000,
  /** First of `identityMapGiB` page directories, one 4 KiB page each. */
  pageDirectories: 0xb000,
  /** Identity-mapped with 2 MiB pages at entry: all of the 32-bit space, so kernel, zero page, cmdline and initrd are covered. */
  identityMapGiB: 4,
  cmdline: 0x20000,
  /** End (exclusive) of the area the command line may occupy. */
  cmdlineLimit: 0x9fc00,
  mpTable: 0x9fc00,
  /** e820: RAM is [0, lowRamEnd), then reserved up to highMemStart. */
  lowRamEnd: 0x9fc00,
  highMemStart: 0x100000,
  /** ACPI tables (RSDP first), in the reserved BIOS area: [acpiTables, acpiTablesEnd). */
  acpiTables: 0xe0000,
  acpiTablesEnd: 0x100000,
  /** Where the protected-mode part of a bzImage is loaded (boot.rst: 0x100000 for bzImage). */
  bzImageLoad: 0x100000,
  pciHoleStart: 0xc000_0000,
  pciHoleEnd: 0x1_0000_0000,
  ioapic: 0xfec0_0000,
  lapic: 0xfee0_0000,
} as const;

export const PAGE_SIZE = 0x1000;
export const MiB = 1 << 20;
export const GiB = 2 ** 30;

export interface RamRegion {
  /** Guest-physical start. */
  gpa: number;
  /** Size in bytes. */
  size: number;
}

/**
 * The RAM regions for a guest with `memBytes` of RAM: one below the PCI hole and, above 3 GiB, a second
 * one from 4 GiB. Each is at most 3 GiB (under the 4 GiB external ArrayBuffer limit of Node 20) except
 * the high one, which the caller may split further.
 */
export function guestRamRegions(memBytes: number): RamRegion[] {
  if (!Number.isSafeInteger(memBytes) || memBytes < LAYOUT.highMemStart || memBytes % PAGE_SIZE !== 0) {
    throw new RangeError(`guest memory size ${memBytes} must be a whole number of 4 KiB pages, at least 1 MiB`);
  }
  const low = Math.min(memBytes, LAYOUT.pciHoleStart);
  const regions: RamRegion[] = [{ gpa: 0, size: low }];
  if (memBytes > low) regions.push({ gpa: LAYOUT.pciHoleEnd, size: memBytes - low });
  return regions;
}

export const alignUp = (n: number, align: number): number => Math.ceil(n / align) * align;
export const alignDown = (n: number, align: number): number => Math.floor(n / align) * align;
