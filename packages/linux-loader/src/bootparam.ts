/**
 * The x86 boot protocol byte layouts: `struct boot_params` (the "zero page") and the `struct setup_header`
 * embedded in it at 0x1f1, as in Linux `arch/x86/include/uapi/asm/bootparam.h` and
 * `Documentation/x86/boot.rst`. Offsets are absolute within the zero page, which are also the offsets of
 * the setup header fields within a bzImage file. Field names are the C names so tests can compare them
 * with `offsetof` from the real header.
 */
import { LoaderError } from './errors.js';

export interface Field {
  readonly offset: number;
  /** Width in bytes: 1, 2, 4 or 8. */
  readonly size: 1 | 2 | 4 | 8;
}

const f = (offset: number, size: Field['size']): Field => ({ offset, size });

/** `struct setup_header` fields, at their offsets in `struct boot_params` (= in the bzImage file). */
export const SETUP_HEADER = {
  setup_sects: f(0x1f1, 1),
  root_flags: f(0x1f2, 2),
  syssize: f(0x1f4, 4),
  ram_size: f(0x1f8, 2),
  vid_mode: f(0x1fa, 2),
  root_dev: f(0x1fc, 2),
  boot_flag: f(0x1fe, 2),
  jump: f(0x200, 2),
  header: f(0x202, 4),
  version: f(0x206, 2),
  realmode_swtch: f(0x208, 4),
  start_sys_seg: f(0x20c, 2),
  kernel_version: f(0x20e, 2),
  type_of_loader: f(0x210, 1),
  loadflags: f(0x211, 1),
  setup_move_size: f(0x212, 2),
  code32_start: f(0x214, 4),
  ramdisk_image: f(0x218, 4),
  ramdisk_size: f(0x21c, 4),
  bootsect_kludge: f(0x220, 4),
  heap_end_ptr: f(0x224, 2),
  ext_loader_ver: f(0x226, 1),
  ext_loader_type: f(0x227, 1),
  cmd_line_ptr: f(0x228, 4),
  initrd_addr_max: f(0x22c, 4),
  kernel_alignment: f(0x230, 4),
  relocatable_kernel: f(0x234, 1),
  min_alignment: f(0x235, 1),
  xloadflags: f(0x236, 2),
  cmdline_size: f(0x238, 4),
  hardware_subarch: f(0x23c, 4),
  hardware_subarch_data: f(0x240, 8),
  payload_offset: f(0x248, 4),
  payload_length: f(0x24c, 4),
  setup_data: f(0x250, 8),
  pref_address: f(0x258, 8),
  init_size: f(0x260, 4),
  handover_offset: f(0x264, 4),
  kernel_info_offset: f(0x268, 4),
} as const satisfies Record<string, Field>;

/** Start of the setup header in the zero page and in the image. */
export const SETUP_HEADER_START = 0x1f1;
/** End (exclusive) of the setup header fields this module knows (kernel_info_offset is the last, 2.15). */
export const SETUP_HEADER_KNOWN_END = 0x26c;
/** The setup header may not extend past this offset of boot_params (the next field, edd_mbr_sig_buffer). */
export const SETUP_HEADER_MAX_END = 0x290;

/** The `struct boot_params` fields a loader writes besides the setup header. */
export const BOOT_PARAMS = {
  acpi_rsdp_addr: f(0x070, 8),
  ext_ramdisk_image: f(0x0c0, 4),
  ext_ramdisk_size: f(0x0c4, 4),
  ext_cmd_line_ptr: f(0x0c8, 4),
  alt_mem_k: f(0x1e0, 4),
  e820_entries: f(0x1e8, 1),
  sentinel: f(0x1ef, 1),
} as const satisfies Record<string, Field>;

/** Offset of `hdr` (the setup header) in boot_params. */
export const BOOT_PARAMS_HDR = SETUP_HEADER_START;
/** Offset of `e820_table` in boot_params. */
export const BOOT_PARAMS_E820_TABLE = 0x2d0;
/** `sizeof(struct boot_params)`: one page. */
export const BOOT_PARAMS_SIZE = 0x1000;

/** `struct boot_e820_entry` (packed): u64 addr, u64 size, u32 type. */
export const E820_ENTRY = { addr: f(0, 8), size: f(8, 8), type: f(16, 4) } as const;
export const E820_ENTRY_SIZE = 20;
/** E820_MAX_ENTRIES_ZEROPAGE */
export const E820_MAX_ENTRIES = 128;
export const E820_RAM = 1;
export const E820_RESERVED = 2;

/** boot_flag value (0x1fe). */
export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" at 0x202, little endian. */
export const HDRS_MAGIC = 0x53726448;

/** loadflags bits */
export const LOADED_HIGH = 1 << 0;
export const KASLR_FLAG = 1 << 1;
export const QUIET_FLAG = 1 << 5;
export const KEEP_SEGMENTS = 1 << 6;
export const CAN_USE_HEAP = 1 << 7;

/** xloadflags bits (protocol 2.12+) */
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
export const XLF_EFI_HANDOVER_32 = 1 << 2;
export const XLF_EFI_HANDOVER_64 = 1 << 3;
export const XLF_EFI_KEXEC = 1 << 4;

/** type_of_loader for a boot loader without an assigned id. */
export const LOADER_TYPE_UNDEFINED = 0xff;

/** Offset of the 64-bit entry point from the start of the protected-mode kernel (boot.rst, 64-bit protocol). */
export const STARTUP_64_OFFSET = 0x200;

/**
 * Read a field as a number. A u64 field must be below 2^53 (as every address the loader writes is); for
 * one read from an image, use `readU64` and range-check it with context.
 */
export function readField(view: DataView, field: Field, base = 0): number {
  const at = base + field.offset;
  switch (field.size) {
    case 1:
      return view.getUint8(at);
    case 2:
      return view.getUint16(at, true);
    case 4:
      return view.getUint32(at, true);
    case 8: {
      const v = readU64(view, field, base);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new LoaderError('format', `u64 at 0x${at.toString(16)} is out of range: 0x${v.toString(16)}`);
      }
      return Number(v);
    }
  }
}

/** Read an 8-byte field whole, as a bigint. */
export function readU64(view: DataView, field: Field, base = 0): bigint {
  return view.getBigUint64(base + field.offset, true);
}

export function writeField(view: DataView, field: Field, value: number, base = 0): void {
  const at = base + field.offset;
  if (!Number.isSafeInteger(value) || value < 0 || (field.size < 8 && value >= 2 ** (8 * field.size))) {
    throw new RangeError(`value ${value} does not fit a ${field.size}-byte field at 0x${at.toString(16)}`);
  }
  switch (field.size) {
    case 1:
      view.setUint8(at, value);
      return;
    case 2:
      view.setUint16(at, value, true);
      return;
    case 4:
      view.setUint32(at, value, true);
      return;
    case 8:
      view.setBigUint64(at, BigInt(value), true);
      return;
  }
}
