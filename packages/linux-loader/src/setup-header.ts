import {
  BOOT_FLAG_MAGIC,
  HDRS_MAGIC,
  LOADED_HIGH,
  SETUP_HEADER,
  SETUP_HEADER_KNOWN_END,
  SETUP_HEADER_MAX_END,
  SETUP_HEADER_START,
  XLF_KERNEL_64,
  readField,
  readU64,
} from './bootparam.js';
import { LoaderError, hex } from './errors.js';
import { dataView } from './memory.js';

/** Oldest boot protocol accepted: 2.12 is the first with `xloadflags`, which announces the 64-bit entry. */
export const MIN_PROTOCOL = 0x020c;

/** The setup header of a bzImage, decoded and validated. Sizes and offsets are in bytes. */
export interface SetupHeader {
  /** Boot protocol version as (major << 8) | minor, e.g. 0x020f. */
  version: number;
  /** "2.15" */
  versionString: string;
  /** Setup code sectors (0 in the file already turned into 4). */
  setupSects: number;
  /** Offset of the protected-mode kernel in the file: (setupSects + 1) * 512. */
  protectedModeOffset: number;
  /** Size of the protected-mode kernel: syssize * 16. */
  protectedModeSize: number;
  /** End (exclusive) of the setup header in the file: 0x202 + byte at 0x201. */
  headerEnd: number;
  loadflags: number;
  xloadflags: number;
  code32Start: number;
  kernelAlignment: number;
  relocatable: boolean;
  minAlignment: number;
  /** Highest address the initrd may occupy (inclusive). */
  initrdAddrMax: number;
  /** Maximum command line length, without the terminating NUL. */
  cmdlineSize: number;
  /** Offset of the (compressed) payload from the start of the protected-mode kernel. */
  payloadOffset: number;
  payloadLength: number;
  prefAddress: number;
  /** Linear memory the kernel needs from its runtime start before it reads the memory map. */
  initSize: number;
  /** The version string the image carries (from `kernel_version`), if any. */
  kernelVersion?: string;
}

const HEADER_MIN_FILE = SETUP_HEADER_KNOWN_END;
/** x86-64 physical addresses have at most 52 bits (so every valid one is a safe JavaScript integer). */
const MAX_PHYS_ADDR = 2n ** 52n;

/** True if `bytes` has the "HdrS" magic at 0x202 (is some kind of Linux x86 boot image). */
export function hasHdrS(bytes: Uint8Array): boolean {
  return bytes.length >= 0x206 && dataView(bytes).getUint32(0x202, true) === HDRS_MAGIC;
}

/**
 * Parse and validate a bzImage's setup header. `name` (usually the path) is used in error messages:
 * `kernel /x/y: not a bzImage (no HdrS magic at 0x202)`.
 */
export function parseSetupHeader(bytes: Uint8Array, name: string): SetupHeader {
  const who = `kernel ${name}`;
  if (bytes.length < 0x206) {
    throw new LoaderError('format', `${who}: not a bzImage (file is only ${bytes.length} bytes, too short for a setup header)`);
  }
  const dv = dataView(bytes);
  const read = (field: (typeof SETUP_HEADER)[keyof typeof SETUP_HEADER]) => readField(dv, field);
  if (read(SETUP_HEADER.header) !== HDRS_MAGIC) {
    throw new LoaderError('format', `${who}: not a bzImage (no HdrS magic at 0x202)`);
  }
  const bootFlag = read(SETUP_HEADER.boot_flag);
  if (bootFlag !== BOOT_FLAG_MAGIC) {
    throw new LoaderError('format', `${who}: not a bzImage (boot flag ${hex(bootFlag)} at 0x1fe, expected 0xaa55)`);
  }
  // Every field read from here on lies below HEADER_MIN_FILE.
  if (bytes.length < HEADER_MIN_FILE) {
    throw new LoaderError('format', `${who}: truncated (${bytes.length} bytes, the setup header alone needs ${HEADER_MIN_FILE})`);
  }
  const version = read(SETUP_HEADER.version);
  const versionString = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  if (version < MIN_PROTOCOL) {
    throw new LoaderError(
      'unsupported',
      `${who}: boot protocol ${versionString} too old, need >= 2.12 (a 64-bit Linux 3.8 or newer)`,
    );
  }
  const headerEnd = 0x202 + bytes[0x201];
  if (bytes[0x200] !== 0xeb || headerEnd > SETUP_HEADER_MAX_END || headerEnd < SETUP_HEADER.header.offset + 4) {
    throw new LoaderError('format', `${who}: corrupt setup header (jump at 0x200 gives header end ${hex(headerEnd)})`);
  }
  const loadflags = read(SETUP_HEADER.loadflags);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new LoaderError('unsupported', `${who}: a zImage (loadflags lacks LOADED_HIGH), need a bzImage`);
  }
  const xloadflags = read(SETUP_HEADER.xloadflags);
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new LoaderError('unsupported', `${who}: no 64-bit entry point (xloadflags lacks XLF_KERNEL_64): not an x86-64 kernel`);
  }
  const rawSects = read(SETUP_HEADER.setup_sects);
  const setupSects = rawSects === 0 ? 4 : rawSects;
  const protectedModeOffset = (setupSects + 1) * 512;
  const protectedModeSize = read(SETUP_HEADER.syssize) * 16;
  if (protectedModeSize === 0) {
    throw new LoaderError('format', `${who}: corrupt setup header (syssize is 0)`);
  }
  if (protectedModeOffset + protectedModeSize > bytes.length) {
    throw new LoaderError(
      'format',
      `${who}: truncated (${bytes.length} bytes, the header says ${protectedModeOffset + protectedModeSize}: ` +
        `${protectedModeOffset} of setup + ${protectedModeSize} of kernel)`,
    );
  }
  const payloadOffset = read(SETUP_HEADER.payload_offset);
  const payloadLength = read(SETUP_HEADER.payload_length);
  if (payloadLength === 0 || payloadOffset + payloadLength > protectedModeSize) {
    throw new LoaderError(
      'format',
      `${who}: corrupt setup header (payload ${hex(payloadOffset)}+${hex(payloadLength)} outside the ${protectedModeSize}-byte kernel)`,
    );
  }
  const kernelAlignment = read(SETUP_HEADER.kernel_alignment);
  const relocatable = read(SETUP_HEADER.relocatable_kernel) !== 0;
  if (kernelAlignment === 0 || (kernelAlignment & (kernelAlignment - 1)) !== 0) {
    throw new LoaderError('format', `${who}: corrupt setup header (kernel_alignment ${hex(kernelAlignment)} is not a power of two)`);
  }
  const initSize = read(SETUP_HEADER.init_size);
  if (initSize === 0) {
    throw new LoaderError('format', `${who}: corrupt setup header (init_size is 0)`);
  }
  const rawPref = readU64(dv, SETUP_HEADER.pref_address);
  if (rawPref >= MAX_PHYS_ADDR) {
    throw new LoaderError(
      'format',
      `${who}: corrupt setup header (pref_address 0x${rawPref.toString(16)} is beyond the 52-bit physical address space)`,
    );
  }
  const prefAddress = Number(rawPref);
  const cmdlineSize = read(SETUP_HEADER.cmdline_size);

  return {
    version,
    versionString,
    setupSects,
    protectedModeOffset,
    protectedModeSize,
    headerEnd,
    loadflags,
    xloadflags,
    code32Start: read(SETUP_HEADER.code32_start),
    kernelAlignment,
    relocatable,
    minAlignment: read(SETUP_HEADER.min_alignment),
    initrdAddrMax: read(SETUP_HEADER.initrd_addr_max),
    cmdlineSize,
    payloadOffset,
    payloadLength,
    prefAddress,
    initSize,
    kernelVersion: readKernelVersion(bytes, read(SETUP_HEADER.kernel_version), setupSects),
  };
}

/** boot.rst: a non-zero kernel_version points (less 0x200) at a NUL-terminated string inside the setup code. */
function readKernelVersion(bytes: Uint8Array, pointer: number, setupSects: number): string | undefined {
  if (pointer === 0) return undefined;
  const start = pointer + 0x200;
  const limit = Math.min(bytes.length, (setupSects + 1) * 512);
  if (start >= limit) return undefined;
  let end = start;
  while (end < limit && bytes[end] !== 0 && end - start < 256) end++;
  const text = String.fromCharCode(...bytes.subarray(start, end));
  return /^[\x20-\x7e]+$/.test(text) ? text : undefined;
}

/** The raw setup header bytes [0x1f1, headerEnd), to be copied into the zero page (boot.rst, 64-bit protocol). */
export function setupHeaderBytes(bytes: Uint8Array, header: SetupHeader): Uint8Array {
  return bytes.subarray(SETUP_HEADER_START, header.headerEnd);
}
