import { STARTUP_64_OFFSET } from './bootparam.js';
import { encodeCmdline } from './cmdline.js';
import { type Decompressors, type PayloadFormat, type UnpackResult, builtinDecompressors, unpackPayload } from './compression.js';
import {
  type BootCpuState,
  CR0_ET,
  CR0_PE,
  CR0_PG,
  CR4_PAE,
  EFER_LMA,
  EFER_LME,
  RFLAGS_RESERVED,
} from './cpu-state.js';
import { type E820Entry, buildE820 } from './e820.js';
import { type ElfImage, elfExtent, hasElfMagic, loadElf, parseElf, parseElfImage, physicalEntry } from './elf.js';
import { type KernelImage, imageBytes, inBatch, isKernelSource } from './kernel-source.js';
import { LoaderError, formatMiB, hex } from './errors.js';
import { writeGdt } from './gdt.js';
import { type RamRegion, LAYOUT, MiB, PAGE_SIZE, alignDown, alignUp, guestRamRegions } from './layout.js';
import { type GuestMemory, mustView, writeBytes } from './memory.js';
import { MP_MAX_CPUS, writeMpTable } from './mptable.js';
import { identityMapBytes, writeIdentityPageTables } from './paging.js';
import { type SetupHeader, hasHdrS, parseSetupHeader, setupHeaderBytes } from './setup-header.js';
import { SYNTHETIC_HEADER, buildBootParams } from './zero-page.js';

export interface LinuxBootOptions {
  /**
   * bzImage or ELF vmlinux: the whole file, or a source it is read from (an ELF's headers and segments
   * only, straight into guest memory; a bzImage is read whole).
   */
  kernel: KernelImage;
  /** Names the kernel in error messages (usually its path). */
  kernelName?: string;
  /**
   * initramfs, written as is: its bytes, or its size and a function that fills guest memory with it (so a
   * file goes straight into guest RAM, with no copy of it held in the VMM).
   */
  initrd?: Uint8Array | InitrdSource;
  initrdName?: string;
  /** Kernel command line (without the NUL). */
  cmdline?: string;
  /** Guest RAM size in bytes; the RAM must be laid out as `guestRamRegions(memBytes)` says. */
  memBytes: number;
  /** vCPUs described in the MP table (APIC IDs 0..cpus-1). Default 1. */
  cpus?: number;
  /**
   * Unpack a bzImage's compressed payload on the host and enter the kernel proper directly (default true).
   * Falls back to the guest's own decompressor when the format has no decompressor here.
   */
  unpack?: boolean;
  /** Host decompressors by format, merged over the built-in ones (lz4). `@hype/linux-loader/node` has gzip. */
  decompressors?: Decompressors;
  /**
   * ACPI tables laid out for guest-physical address `LAYOUT.acpiTables` (e.g. by @hype/acpi), with the
   * RSDP at `rsdpAddr`: written there (a reserved e820 range) and announced in boot_params. The MP table
   * is written either way, for kernels without ACPI.
   */
  acpi?: { bytes: Uint8Array; rsdpAddr: number };
  /**
   * Keep the unpacked payload of this bzImage for the next `loadLinux` or `checkLinux` given the same
   * `kernel` (array or source object), which then does not unpack it again (it takes the payload and
   * forgets it). For a dry run followed by the real load (hype's CLI checks a kernel before it builds the
   * VM): one decompression, one buffer. `kernel` must not change in between.
   */
  keepUnpacked?: boolean;
}

/** An initrd that is not in memory yet: `read` fills `into` (exactly `size` bytes) or throws. */
export interface InitrdSource {
  readonly size: number;
  read(into: Uint8Array): void;
}

function isBytes(initrd: Uint8Array | InitrdSource): initrd is Uint8Array {
  return ArrayBuffer.isView(initrd);
}

/** Payloads a dry run unpacked (LinuxBootOptions.keepUnpacked), by the kernel image they came from. */
const keptUnpacked = new WeakMap<KernelImage, { payloadStart: number; payloadLength: number; trailer: string; result: UnpackResult }>();

/** The trailer (gzip's CRC32 and size, or the size the kernel build appends) that tells payloads apart. */
function payloadTrailer(payload: Uint8Array): string {
  return Array.from(payload.subarray(Math.max(0, payload.length - 8))).join(',');
}

/** How the kernel was put in memory. */
export type KernelLoadMode =
  /** An ELF vmlinux given as the kernel, loaded at its p_paddr. */
  | 'elf'
  /** A bzImage whose payload the host decompressed: the ELF inside, loaded at its p_paddr. */
  | 'bzimage-unpacked'
  /** A bzImage loaded at 1 MiB, entered at its 64-bit entry: the guest decompresses itself. */
  | 'bzimage';

export interface LoadedKernel {
  mode: KernelLoadMode;
  /** Payload format of a bzImage ('elf' for an uncompressed one). */
  payloadFormat?: PayloadFormat;
  /** Why a bzImage was not unpacked on the host (mode 'bzimage'). */
  notUnpackedBecause?: string;
  /** Boot protocol version of a bzImage ("2.15"). */
  protocol?: string;
  /** The version string a bzImage carries. */
  version?: string;
  /** Physical entry point (RIP at start). */
  entry: number;
  /** Where the image was written [start, end). */
  start: number;
  end: number;
  /** End of the memory the kernel may use before it reads the e820 map (its init_size region). */
  reservedEnd: number;
  /** PVH entry of the ELF, if it has one (informational). */
  pvhEntry?: number;
}

/** Everything the loader wrote and the state the boot vCPU starts in. */
export interface LinuxBootSetup {
  kernel: LoadedKernel;
  initrd?: { addr: number; size: number };
  cmdline: { addr: number; length: number; text: string };
  zeroPage: number;
  e820: E820Entry[];
  mpTable: { start: number; end: number; cpus: number };
  /** RAM regions the e820 map describes (same as guestRamRegions(memBytes)). */
  ram: RamRegion[];
  /** Boot vCPU state (vCPU 0); the others start from KVM's reset state and are woken by the guest. */
  cpu: BootCpuState;
}

interface KernelPlan {
  mode: KernelLoadMode;
  header?: SetupHeader;
  /** The bzImage file's bytes (mode 'bzimage' and 'bzimage-unpacked'). */
  bzImage?: Uint8Array;
  elf?: { bytes: KernelImage; image: ElfImage; name: string };
  payloadFormat?: PayloadFormat;
  notUnpackedBecause?: string;
  start: number;
  end: number;
  reservedEnd: number;
  entry: number;
}

/**
 * Decide how the kernel goes into memory (and validate it) without writing anything yet. A payload is
 * unpacked only if it claims at most `maxUnpacked` bytes (the RAM the kernel must fit in).
 */
function planKernel(opts: LinuxBootOptions, name: string, maxUnpacked: number): KernelPlan {
  const kernel = opts.kernel;
  if (hasElfMagic(isKernelSource(kernel) ? imageBytes(kernel, 0, Math.min(kernel.size, 4), name) : kernel)) {
    return elfPlan('elf', { bytes: kernel, image: parseElfImage(kernel, name), name });
  }
  // A bzImage is needed whole (its setup header, and its payload to unpack or to load).
  const bytes = isKernelSource(kernel) ? imageBytes(kernel, 0, kernel.size, name) : kernel;
  if (!hasHdrS(bytes)) {
    throw new LoaderError('format', `kernel ${name}: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux`);
  }
  const header = parseSetupHeader(bytes, name);
  const pm = bytes.subarray(header.protectedModeOffset, header.protectedModeOffset + header.protectedModeSize);
  const payload = pm.subarray(header.payloadOffset, header.payloadOffset + header.payloadLength);
  let notUnpackedBecause = 'unpacking disabled';
  let payloadFormat: PayloadFormat | undefined;
  if (opts.unpack !== false) {
    const payloadStart = header.protectedModeOffset + header.payloadOffset;
    const trailer = payloadTrailer(payload);
    const kept = keptUnpacked.get(kernel);
    keptUnpacked.delete(kernel);
    const reuse =
      kept !== undefined &&
      kept.payloadStart === payloadStart &&
      kept.payloadLength === payload.length &&
      kept.trailer === trailer &&
      (!kept.result.ok || kept.result.elf.length <= maxUnpacked);
    const result = reuse ? kept.result : unpackPayload(payload, { ...builtinDecompressors, ...opts.decompressors }, `kernel ${name}`, maxUnpacked);
    if (opts.keepUnpacked && result.ok && result.format !== 'elf') keptUnpacked.set(kernel, { payloadStart, payloadLength: payload.length, trailer, result });
    payloadFormat = result.format;
    if (result.ok) {
      const elfName = `${name} (${result.format} payload)`;
      const plan = elfPlan('bzimage-unpacked', { bytes: result.elf, image: parseElf(result.elf, elfName), name: elfName });
      return { ...plan, header, bzImage: bytes, payloadFormat };
    }
    notUnpackedBecause = result.reason;
  }
  // The compressed kernel moves itself to max(align_up(load, kernel_alignment), LOAD_PHYSICAL_ADDR =
  // pref_address) and needs init_size bytes there (arch/x86/boot/compressed/head_64.S).
  const load = LAYOUT.bzImageLoad;
  const runtimeStart = header.relocatable
    ? Math.max(alignUp(load, header.kernelAlignment), header.prefAddress)
    : header.prefAddress || load;
  return {
    mode: 'bzimage',
    header,
    bzImage: bytes,
    payloadFormat,
    notUnpackedBecause,
    start: load,
    end: load + header.protectedModeSize,
    reservedEnd: Math.max(load + header.protectedModeSize, runtimeStart + header.initSize),
    entry: load + STARTUP_64_OFFSET,
  };
}

function elfPlan(mode: KernelLoadMode, elf: { bytes: KernelImage; image: ElfImage; name: string }): KernelPlan {
  const { start, end } = elfExtent(elf.image);
  const entry = physicalEntry(elf.image);
  if (entry === undefined) {
    throw new LoaderError('format', `kernel ${elf.name}: ELF entry point ${hex(Number(elf.image.entry))} lies in no loadable segment`);
  }
  if (start < LAYOUT.highMemStart) {
    throw new LoaderError('unsupported', `kernel ${elf.name}: ELF loads at ${hex(start)}, below 1 MiB where the boot tables live`);
  }
  return { mode, elf, start, end, reservedEnd: end, entry };
}

/** Headroom beyond kernel + initrd in the suggested RAM size: the kernel needs free memory to boot. */
const BOOT_HEADROOM = 16 * MiB;

function tooSmall(memBytes: number, plan: KernelPlan, initrdSize: number, detail: string): LoaderError {
  const needed = alignUp(alignUp(plan.reservedEnd, PAGE_SIZE) + alignUp(initrdSize, PAGE_SIZE) + BOOT_HEADROOM, 16 * MiB);
  const neededMiB = needed / MiB;
  return new LoaderError('memory', `memory ${formatMiB(memBytes)} too small for ${detail}: use --mem ${neededMiB} or more`, neededMiB);
}

/** Everything `loadLinux` decided before writing anything. */
interface BootPlan {
  name: string;
  initrdName: string;
  cpus: number;
  plan: KernelPlan;
  initrd: { addr: number; size: number } | undefined;
  cmdline: Uint8Array;
  cmdlineText: string;
  ram: RamRegion[];
}

/**
 * Everything `loadLinux` checks, without guest memory and, for an ELF KernelSource, without reading more
 * than its headers (a bzImage is read whole: its payload is checked and unpacked): throws the LoaderError
 * the load would throw. A dry run (hype's CLI checks a kernel, initrd size, RAM size and command line
 * before it builds a VM); with `keepUnpacked`, the load that follows does not unpack a bzImage's payload
 * again.
 */
export function checkLinux(opts: LinuxBootOptions): void {
  inBatch(opts.kernel, () => planBoot(opts));
}

/**
 * Load a Linux kernel (and initrd, command line) into guest memory and build everything a 64-bit boot
 * needs: zero page with e820 map, MP table, GDT, identity page tables, and the boot vCPU's registers.
 * Nothing is written if validation fails. Errors are `LoaderError`s with one-line messages.
 */
export function loadLinux(mem: GuestMemory, opts: LinuxBootOptions): LinuxBootSetup {
  return inBatch(opts.kernel, () => writeBoot(mem, opts, planBoot(opts)));
}

function planBoot(opts: LinuxBootOptions): BootPlan {
  const name = opts.kernelName ?? 'image';
  const initrdName = opts.initrdName ?? 'image';
  const cpus = opts.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MP_MAX_CPUS) {
    throw new LoaderError('unsupported', `${cpus} vCPUs: the MP table describes 1 to ${MP_MAX_CPUS}`);
  }
  if (!Number.isSafeInteger(opts.memBytes) || opts.memBytes < LAYOUT.highMemStart || opts.memBytes % PAGE_SIZE !== 0) {
    throw new LoaderError('memory', `memory size ${opts.memBytes} bytes: need a whole number of 4 KiB pages, at least 1 MiB`);
  }
  const ram = guestRamRegions(opts.memBytes);
  const lowRamEnd = ram[0].size;
  // The kernel and its boot tables live below the PCI hole: the unpacked image cannot be any larger.
  const plan = planKernel(opts, name, lowRamEnd);
  const initrdSize = opts.initrd === undefined ? 0 : isBytes(opts.initrd) ? opts.initrd.length : opts.initrd.size;
  if (!Number.isSafeInteger(initrdSize) || initrdSize < 0) throw new LoaderError('format', `initrd ${initrdName}: size ${initrdSize}`);

  const kernelDetail =
    plan.mode === 'bzimage'
      ? `kernel (up to ${formatMiB(plan.reservedEnd)} with init_size ${formatMiB(plan.header!.initSize)})`
      : `kernel (up to ${formatMiB(plan.reservedEnd)})`;
  const initrdDetail = opts.initrd ? ` + initrd (${formatMiB(alignUp(initrdSize, PAGE_SIZE))})` : '';
  if (plan.reservedEnd > LAYOUT.pciHoleStart) {
    throw new LoaderError(
      'unsupported',
      `kernel ${name} needs memory up to ${formatMiB(plan.reservedEnd)}, beyond the ${formatMiB(LAYOUT.pciHoleStart)} ` +
        `below the PCI hole it must fit in: no --mem can hold it`,
    );
  }
  if (plan.reservedEnd > lowRamEnd || plan.reservedEnd > identityMapBytes()) {
    throw tooSmall(opts.memBytes, plan, initrdSize, kernelDetail + initrdDetail);
  }

  let initrd: { addr: number; size: number } | undefined;
  if (opts.initrd) {
    if (initrdSize === 0) throw new LoaderError('format', `initrd ${initrdName}: empty file`);
    const addrMax = plan.header?.initrdAddrMax ?? SYNTHETIC_HEADER.initrdAddrMax;
    const top = Math.min(addrMax + 1, lowRamEnd);
    const addr = alignDown(top - initrdSize, PAGE_SIZE);
    if (addr < alignUp(plan.reservedEnd, PAGE_SIZE)) {
      if (top < lowRamEnd) {
        throw new LoaderError(
          'memory',
          `initrd ${initrdName} (${formatMiB(initrdSize)}) does not fit between the kernel (up to ${formatMiB(plan.reservedEnd)}) ` +
            `and the kernel's initrd limit ${hex(addrMax)}: use a smaller initrd`,
        );
      }
      throw tooSmall(opts.memBytes, plan, initrdSize, kernelDetail + initrdDetail);
    }
    initrd = { addr, size: initrdSize };
  }

  const maxCmdline = Math.min(plan.header?.cmdlineSize ?? SYNTHETIC_HEADER.cmdlineSize, LAYOUT.cmdlineLimit - LAYOUT.cmdline - 1);
  const cmdlineText = opts.cmdline ?? '';
  const cmdline = encodeCmdline(cmdlineText, maxCmdline, name);
  if (opts.acpi && LAYOUT.acpiTables + opts.acpi.bytes.length > LAYOUT.acpiTablesEnd) {
    throw new LoaderError('unsupported', `ACPI tables of ${opts.acpi.bytes.length} bytes do not fit the ${LAYOUT.acpiTablesEnd - LAYOUT.acpiTables}-byte area at ${hex(LAYOUT.acpiTables)}`);
  }

  return { name, initrdName, cpus, plan, initrd, cmdline, cmdlineText, ram };
}

function writeBoot(mem: GuestMemory, opts: LinuxBootOptions, { name, initrdName, cpus, plan, initrd, cmdline, cmdlineText, ram }: BootPlan): LinuxBootSetup {
  let kernel: LoadedKernel;
  if (plan.elf) {
    const loaded = loadElf(mem, plan.elf.bytes, plan.elf.name, plan.elf.image);
    kernel = {
      mode: plan.mode,
      entry: loaded.entry,
      start: loaded.start,
      end: loaded.end,
      reservedEnd: plan.reservedEnd,
      pvhEntry: loaded.pvhEntry,
    };
  } else {
    const h = plan.header!;
    writeBytes(mem, plan.start, plan.bzImage!.subarray(h.protectedModeOffset, h.protectedModeOffset + h.protectedModeSize), `kernel ${name}`);
    kernel = { mode: plan.mode, entry: plan.entry, start: plan.start, end: plan.end, reservedEnd: plan.reservedEnd };
  }
  if (plan.header) {
    kernel.protocol = plan.header.versionString;
    kernel.version = plan.header.kernelVersion;
  }
  if (plan.payloadFormat) kernel.payloadFormat = plan.payloadFormat;
  if (plan.mode === 'bzimage') kernel.notUnpackedBecause = plan.notUnpackedBecause;

  if (initrd && opts.initrd) {
    if (isBytes(opts.initrd)) writeBytes(mem, initrd.addr, opts.initrd, `initrd ${initrdName}`);
    else opts.initrd.read(mustView(mem, initrd.addr, initrd.size, `initrd ${initrdName}`));
  }
  writeBytes(mem, LAYOUT.cmdline, cmdline, 'kernel command line');

  const e820 = buildE820(opts.memBytes);
  const zeroPage = buildBootParams({
    setupHeader: plan.header ? setupHeaderBytes(plan.bzImage!, plan.header) : undefined,
    cmdlineAddr: LAYOUT.cmdline,
    cmdlineLength: cmdline.length - 1,
    initrd,
    e820,
    code32Start: plan.mode === 'bzimage' ? plan.start : undefined,
    acpiRsdpAddr: opts.acpi?.rsdpAddr,
  });
  writeBytes(mem, LAYOUT.zeroPage, zeroPage, 'zero page');
  if (opts.acpi) writeBytes(mem, LAYOUT.acpiTables, opts.acpi.bytes, 'ACPI tables');
  const mpTable = { ...writeMpTable(mem, cpus), cpus };

  const seg = writeGdt(mem);
  const cr3 = writeIdentityPageTables(mem);
  const cpu: BootCpuState = {
    regs: {
      rax: 0,
      rbx: 0,
      rcx: 0,
      rdx: 0,
      rsi: LAYOUT.zeroPage,
      rdi: 0,
      rsp: LAYOUT.bootStack,
      rbp: LAYOUT.bootStack,
      r8: 0,
      r9: 0,
      r10: 0,
      r11: 0,
      r12: 0,
      r13: 0,
      r14: 0,
      r15: 0,
      rip: kernel.entry,
      rflags: RFLAGS_RESERVED,
    },
    sregs: {
      cs: seg.code,
      ds: seg.data,
      es: seg.data,
      fs: seg.data,
      gs: seg.data,
      ss: seg.data,
      tr: seg.tss,
      gdt: seg.gdt,
      idt: seg.idt,
      cr0: CR0_PG + CR0_ET + CR0_PE, // not `|`: CR0_PG is bit 31
      cr3,
      cr4: CR4_PAE,
      efer: EFER_LME | EFER_LMA,
    },
  };

  return {
    kernel,
    initrd,
    cmdline: { addr: LAYOUT.cmdline, length: cmdline.length - 1, text: cmdlineText },
    zeroPage: LAYOUT.zeroPage,
    e820,
    mpTable,
    ram,
    cpu,
  };
}
