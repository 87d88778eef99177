import {
  BOOT_FLAG_MAGIC,
  BOOT_PARAMS,
  BOOT_PARAMS_E820_TABLE,
  BOOT_PARAMS_SIZE,
  CAN_USE_HEAP,
  E820_ENTRY,
  E820_ENTRY_SIZE,
  E820_MAX_ENTRIES,
  HDRS_MAGIC,
  LOADED_HIGH,
  LOADER_TYPE_UNDEFINED,
  SETUP_HEADER,
  SETUP_HEADER_MAX_END,
  SETUP_HEADER_START,
  readField,
  writeField,
} from './bootparam.js';
import type { E820Entry } from './e820.js';
import { dataView } from './memory.js';

/** Setup header values a loader reports when it boots an ELF vmlinux that has no setup header of its own. */
export const SYNTHETIC_HEADER = {
  /** Like the kernel's own PVH entry (arch/x86/platform/pvh/enlighten.c), which fills in 2.12. */
  version: 0x020c,
  initrdAddrMax: 0x7fff_ffff,
  cmdlineSize: 2047,
  kernelAlignment: 0x20_0000,
} as const;

/** boot.rst: heap_end_ptr is the end of the setup heap from the start of the real-mode code, minus 0x200. */
export const HEAP_END_PTR = 0xfe00;

export interface BootParamsInput {
  /**
   * The image's setup header bytes [0x1f1, 0x202 + byte at 0x201), copied in as boot.rst requires; omitted
   * for a bare ELF vmlinux, in which case a minimal 2.12 header is synthesized.
   */
  setupHeader?: Uint8Array;
  cmdlineAddr: number;
  /** Length of the command line without its NUL. */
  cmdlineLength: number;
  initrd?: { addr: number; size: number };
  e820: E820Entry[];
  /** Physical address the protected-mode kernel was loaded at (code32_start), for a bzImage. */
  code32Start?: number;
  /** Guest-physical address of the ACPI RSDP (boot_params.acpi_rsdp_addr, boot protocol 2.14+). */
  acpiRsdpAddr?: number;
}

const lo32 = (n: number) => n % 2 ** 32;
const hi32 = (n: number) => Math.floor(n / 2 ** 32);

/** Build `struct boot_params` (one 4 KiB page). */
export function buildBootParams(input: BootParamsInput): Uint8Array {
  const page = new Uint8Array(BOOT_PARAMS_SIZE);
  const dv = dataView(page);
  const set = (field: Parameters<typeof writeField>[1], value: number) => writeField(dv, field, value);
  if (input.setupHeader) {
    if (SETUP_HEADER_START + input.setupHeader.length > SETUP_HEADER_MAX_END) {
      throw new RangeError(`setup header of ${input.setupHeader.length} bytes does not fit boot_params`);
    }
    page.set(input.setupHeader, SETUP_HEADER_START);
  } else {
    set(SETUP_HEADER.boot_flag, BOOT_FLAG_MAGIC);
    set(SETUP_HEADER.header, HDRS_MAGIC);
    set(SETUP_HEADER.version, SYNTHETIC_HEADER.version);
    set(SETUP_HEADER.loadflags, LOADED_HIGH);
    set(SETUP_HEADER.initrd_addr_max, SYNTHETIC_HEADER.initrdAddrMax);
    set(SETUP_HEADER.kernel_alignment, SYNTHETIC_HEADER.kernelAlignment);
    set(SETUP_HEADER.cmdline_size, SYNTHETIC_HEADER.cmdlineSize);
  }
  set(SETUP_HEADER.type_of_loader, LOADER_TYPE_UNDEFINED);
  set(SETUP_HEADER.loadflags, readField(dv, SETUP_HEADER.loadflags) | CAN_USE_HEAP);
  set(SETUP_HEADER.heap_end_ptr, HEAP_END_PTR);
  if (input.code32Start !== undefined) set(SETUP_HEADER.code32_start, input.code32Start);

  set(SETUP_HEADER.cmd_line_ptr, lo32(input.cmdlineAddr));
  set(BOOT_PARAMS.ext_cmd_line_ptr, hi32(input.cmdlineAddr));
  if (input.initrd) {
    set(SETUP_HEADER.ramdisk_image, lo32(input.initrd.addr));
    set(SETUP_HEADER.ramdisk_size, lo32(input.initrd.size));
    set(BOOT_PARAMS.ext_ramdisk_image, hi32(input.initrd.addr));
    set(BOOT_PARAMS.ext_ramdisk_size, hi32(input.initrd.size));
  } else {
    set(SETUP_HEADER.ramdisk_image, 0);
    set(SETUP_HEADER.ramdisk_size, 0);
  }

  if (input.acpiRsdpAddr !== undefined) set(BOOT_PARAMS.acpi_rsdp_addr, input.acpiRsdpAddr);

  if (input.e820.length > E820_MAX_ENTRIES) throw new RangeError(`${input.e820.length} e820 entries, at most ${E820_MAX_ENTRIES}`);
  set(BOOT_PARAMS.e820_entries, input.e820.length);
  input.e820.forEach((e, i) => {
    const base = BOOT_PARAMS_E820_TABLE + i * E820_ENTRY_SIZE;
    writeField(dv, E820_ENTRY.addr, e.addr, base);
    writeField(dv, E820_ENTRY.size, e.size, base);
    writeField(dv, E820_ENTRY.type, e.type, base);
  });
  return page;
}

/** Read the e820 table back out of a zero page. */
export function readE820(page: Uint8Array): E820Entry[] {
  const dv = dataView(page);
  const n = readField(dv, BOOT_PARAMS.e820_entries);
  const out: E820Entry[] = [];
  for (let i = 0; i < Math.min(n, E820_MAX_ENTRIES); i++) {
    const base = BOOT_PARAMS_E820_TABLE + i * E820_ENTRY_SIZE;
    out.push({
      addr: readField(dv, E820_ENTRY.addr, base),
      size: readField(dv, E820_ENTRY.size, base),
      type: readField(dv, E820_ENTRY.type, base),
    });
  }
  return out;
}
