import { LoaderError, hex } from './errors.js';
import { type KernelImage, imageBytes, isKernelSource } from './kernel-source.js';
import { type GuestMemory, dataView, mustView } from './memory.js';

/** ELF64 layouts used here (System V gABI, include/uapi/linux/elf.h). Offsets in bytes. */
export const ELF = {
  ident: { class: 4, data: 5, version: 6 },
  ehdr: { type: 16, machine: 18, version: 20, entry: 24, phoff: 32, shoff: 40, flags: 48, ehsize: 52, phentsize: 54, phnum: 56, shentsize: 58, shnum: 60, shstrndx: 62 },
  ehdrSize: 64,
  phdr: { type: 0, flags: 4, offset: 8, vaddr: 16, paddr: 24, filesz: 32, memsz: 40, align: 48 },
  phdrSize: 56,
  shdr: { name: 0, type: 4, flags: 8, addr: 16, offset: 24, size: 32, link: 40, info: 44, addralign: 48, entsize: 56 },
  shdrSize: 64,
  sym: { name: 0, info: 4, other: 5, shndx: 6, value: 8, size: 16 },
  symSize: 24,
  ELFCLASS64: 2,
  ELFDATA2LSB: 1,
  ET_EXEC: 2,
  EM_X86_64: 62,
  PT_LOAD: 1,
  PT_NOTE: 4,
  SHT_SYMTAB: 2,
  /** Xen/PVH 32-bit physical entry point note (XEN_ELFNOTE_PHYS32_ENTRY). */
  XEN_ELFNOTE_PHYS32_ENTRY: 18,
} as const;

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfImage {
  /** e_entry as written (for vmlinux: the physical address of startup_64). */
  entry: bigint;
  segments: ElfSegment[];
  /** PT_LOAD segments with a non-zero memory size. */
  loads: ElfSegment[];
}

const isElf = (b: Uint8Array) => b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;

export function hasElfMagic(bytes: Uint8Array): boolean {
  return isElf(bytes);
}

function u64(dv: DataView, at: number): bigint {
  return dv.getBigUint64(at, true);
}

/** A u64 that must be a usable file offset/size/physical address (< 2^53). */
function num(dv: DataView, at: number, what: string, who: string): number {
  const v = u64(dv, at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LoaderError('format', `${who}: ${what} ${hex(Number(v))} is out of range`);
  return Number(v);
}

/**
 * Parse and validate an x86-64 ELF64 executable (e.g. a vmlinux). `name` is used in error messages.
 * `bytes` is the file, or its start up to the end of the program headers when the file is `fileSize`
 * bytes long and read elsewhere (`parseElfImage`).
 */
export function parseElf(bytes: Uint8Array, name: string, fileSize = bytes.length): ElfImage {
  const who = `kernel ${name}`;
  if (!isElf(bytes)) throw new LoaderError('format', `${who}: not an ELF file (no 7f 45 4c 46 magic)`);
  if (fileSize < ELF.ehdrSize || bytes.length < ELF.ehdrSize) throw new LoaderError('format', `${who}: truncated ELF header (${fileSize} bytes)`);
  if (bytes[ELF.ident.class] !== ELF.ELFCLASS64) throw new LoaderError('unsupported', `${who}: a 32-bit ELF, need an x86-64 (ELF64) vmlinux`);
  if (bytes[ELF.ident.data] !== ELF.ELFDATA2LSB) throw new LoaderError('unsupported', `${who}: a big-endian ELF, need an x86-64 vmlinux`);
  const dv = dataView(bytes);
  const machine = dv.getUint16(ELF.ehdr.machine, true);
  if (machine !== ELF.EM_X86_64) throw new LoaderError('unsupported', `${who}: ELF for machine ${machine}, need x86-64 (62)`);
  const type = dv.getUint16(ELF.ehdr.type, true);
  if (type !== ELF.ET_EXEC) throw new LoaderError('unsupported', `${who}: ELF type ${type} is not an executable (ET_EXEC) vmlinux`);
  const phoff = num(dv, ELF.ehdr.phoff, 'e_phoff', who);
  const phentsize = dv.getUint16(ELF.ehdr.phentsize, true);
  const phnum = dv.getUint16(ELF.ehdr.phnum, true);
  if (phentsize !== ELF.phdrSize) throw new LoaderError('format', `${who}: ELF program header size ${phentsize}, expected 56`);
  if (phnum === 0) throw new LoaderError('format', `${who}: ELF has no program headers`);
  if (phoff < ELF.ehdrSize || phoff + phnum * phentsize > fileSize) {
    throw new LoaderError('format', `${who}: truncated (program headers at ${hex(phoff)} end past the ${fileSize}-byte file)`);
  }
  if (phoff + phnum * phentsize > bytes.length) throw new RangeError(`parseElf: ${bytes.length} bytes given, the program headers end at ${phoff + phnum * phentsize}`);
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * ELF.phdrSize;
    const seg: ElfSegment = {
      type: dv.getUint32(at + ELF.phdr.type, true),
      flags: dv.getUint32(at + ELF.phdr.flags, true),
      offset: num(dv, at + ELF.phdr.offset, 'p_offset', who),
      vaddr: u64(dv, at + ELF.phdr.vaddr),
      paddr: num(dv, at + ELF.phdr.paddr, 'p_paddr', who),
      filesz: num(dv, at + ELF.phdr.filesz, 'p_filesz', who),
      memsz: num(dv, at + ELF.phdr.memsz, 'p_memsz', who),
      align: num(dv, at + ELF.phdr.align, 'p_align', who),
    };
    if (seg.type === ELF.PT_LOAD || seg.type === ELF.PT_NOTE) {
      if (seg.offset + seg.filesz > fileSize) {
        throw new LoaderError(
          'format',
          `${who}: truncated (segment ${i} needs file bytes up to ${seg.offset + seg.filesz}, file has ${fileSize})`,
        );
      }
    }
    if (seg.type === ELF.PT_LOAD) {
      if (seg.filesz > seg.memsz) throw new LoaderError('format', `${who}: segment ${i} p_filesz > p_memsz`);
      if (!Number.isSafeInteger(seg.paddr + seg.memsz)) throw new LoaderError('format', `${who}: segment ${i} ends past 2^53`);
    }
    segments.push(seg);
  }
  const loads = segments.filter((s) => s.type === ELF.PT_LOAD && s.memsz > 0);
  if (loads.length === 0) throw new LoaderError('format', `${who}: ELF has no loadable (PT_LOAD) segment`);
  return { entry: u64(dv, ELF.ehdr.entry), segments, loads };
}

/** The ELF header and program headers of an image given as bytes or read from a source (nothing else is read). */
export function parseElfImage(image: KernelImage, name: string): ElfImage {
  if (!isKernelSource(image)) return parseElf(image, name);
  const size = image.size;
  const head = imageBytes(image, 0, Math.min(size, ELF.ehdrSize), name);
  if (!isElf(head) || head.length < ELF.ehdrSize) return parseElf(head, name, size);
  const dv = dataView(head);
  const phoff = dv.getBigUint64(ELF.ehdr.phoff, true);
  const phentsize = dv.getUint16(ELF.ehdr.phentsize, true);
  const phnum = dv.getUint16(ELF.ehdr.phnum, true);
  const headersEnd = phoff + BigInt(phentsize) * BigInt(phnum);
  // Headers of the wrong size, none, or past the file's end: parseElf says so from the first 64 bytes
  // (nothing more is read).
  if (phentsize !== ELF.phdrSize || phnum === 0 || headersEnd > BigInt(size) || phoff < BigInt(ELF.ehdrSize)) return parseElf(head, name, size);
  return parseElf(imageBytes(image, 0, Number(headersEnd), name), name, size);
}

/** Physical address of a virtual address, through the PT_LOAD segment that contains it. */
export function virtToPhys(elf: ElfImage, vaddr: bigint): number | undefined {
  for (const s of elf.loads) {
    if (vaddr >= s.vaddr && vaddr < s.vaddr + BigInt(s.memsz)) return s.paddr + Number(vaddr - s.vaddr);
  }
  return undefined;
}

/**
 * The physical entry point. vmlinux links `ENTRY(phys_startup_64)`, so e_entry already is the physical
 * address of startup_64 (inside a PT_LOAD's physical range); an ELF whose e_entry is virtual is translated
 * through the segment that contains it (paddr + (e_entry - vaddr)).
 */
export function physicalEntry(elf: ElfImage): number | undefined {
  const e = elf.entry;
  for (const s of elf.loads) {
    if (e >= BigInt(s.paddr) && e < BigInt(s.paddr + s.memsz)) return Number(e);
  }
  return virtToPhys(elf, e);
}

/** "Xen\0": the owner of the PVH entry note. */
const XEN_NOTE_NAME = new Uint8Array([0x58, 0x65, 0x6e, 0]);

/** Compared as bytes: note names come from the file and may be any size (no string decoding). */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Larger note segments are not read from a KernelSource for the PVH note (informational); a vmlinux's notes are ~100 bytes. */
const MAX_NOTE_BYTES = 64 * 1024;

/** The PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY) if the kernel has one (CONFIG_PVH). */
export function pvhEntry(image: KernelImage, elf: ElfImage, name = 'image'): number | undefined {
  for (const s of elf.segments) {
    if (s.type !== ELF.PT_NOTE || (isKernelSource(image) && s.filesz > MAX_NOTE_BYTES)) continue;
    const notes = imageBytes(image, s.offset, s.filesz, name);
    const dv = dataView(notes);
    const align = s.align === 8 ? 8 : 4;
    const up = (n: number) => Math.ceil(n / align) * align;
    let at = 0;
    const end = notes.length;
    while (end - at >= 12) {
      const namesz = dv.getUint32(at, true);
      const descsz = dv.getUint32(at + 4, true);
      const type = dv.getUint32(at + 8, true);
      const nameAt = at + 12;
      const descAt = nameAt + up(namesz);
      if (descAt + descsz > end) break;
      if (type === ELF.XEN_ELFNOTE_PHYS32_ENTRY && bytesEqual(notes.subarray(nameAt, nameAt + namesz), XEN_NOTE_NAME) && descsz >= 4) {
        return descsz >= 8 ? Number(dv.getBigUint64(descAt, true) & 0xffffffffn) : dv.getUint32(descAt, true);
      }
      at = descAt + up(descsz);
    }
  }
  return undefined;
}

export interface LoadedElf {
  /** Physical entry point (startup_64 for a vmlinux). */
  entry: number;
  /** Lowest physical address loaded. */
  start: number;
  /** End (exclusive) of the highest segment in memory, BSS included. */
  end: number;
  /** PVH 32-bit entry, if the kernel has the note (informational: this loader enters in 64-bit mode). */
  pvhEntry?: number;
  segments: ElfSegment[];
}

/**
 * Copy every PT_LOAD segment to guest memory at p_paddr and zero its BSS (p_memsz beyond p_filesz). From a
 * KernelSource the segments are read straight into guest memory.
 */
export function loadElf(mem: GuestMemory, image: KernelImage, name: string, elf = parseElfImage(image, name)): LoadedElf {
  const who = `kernel ${name}`;
  const entry = physicalEntry(elf);
  if (entry === undefined) {
    throw new LoaderError('format', `${who}: ELF entry point ${hex(Number(elf.entry))} lies in no loadable segment`);
  }
  let start = Infinity;
  let end = 0;
  for (const s of elf.loads) {
    const dst = mustView(mem, s.paddr, s.memsz, `${who}: segment at ${hex(s.paddr)}`);
    if (isKernelSource(image)) image.readAt(dst.subarray(0, s.filesz), s.offset);
    else dst.set(image.subarray(s.offset, s.offset + s.filesz));
    dst.fill(0, s.filesz);
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  return { entry, start, end, pvhEntry: pvhEntry(image, elf, name), segments: elf.loads };
}

/** The extent [start, end) of the PT_LOAD segments in physical memory, without loading anything. */
export function elfExtent(elf: ElfImage): { start: number; end: number } {
  let start = Infinity;
  let end = 0;
  for (const s of elf.loads) {
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  return { start, end };
}

export interface ElfSymbol {
  name: string;
  /** st_value: for a vmlinux, the kernel virtual address (above 2^63, hence a bigint). */
  value: bigint;
  size: number;
  /** Physical address of `value` through the PT_LOAD segments, if it lies in one. */
  paddr?: number;
}

/**
 * Look a symbol up in the ELF symbol table (.symtab), e.g. `asm_exc_page_fault` in the vmlinux. Returns
 * undefined if the file has no symbol table (a stripped vmlinux, such as the one inside a bzImage) or no
 * such symbol. The first defined symbol of that name wins.
 */
export function findSymbol(bytes: Uint8Array, name: string): ElfSymbol | undefined {
  const elf = parseElf(bytes, 'symbol lookup');
  const dv = dataView(bytes);
  const shoff = Number(u64(dv, ELF.ehdr.shoff));
  const shnum = dv.getUint16(ELF.ehdr.shnum, true);
  const shentsize = dv.getUint16(ELF.ehdr.shentsize, true);
  if (shoff === 0 || shentsize !== ELF.shdrSize || shoff + shnum * shentsize > bytes.length) return undefined;
  const wanted = new TextEncoder().encode(name);
  const section = (i: number) => {
    const at = shoff + i * ELF.shdrSize;
    return {
      type: dv.getUint32(at + ELF.shdr.type, true),
      offset: Number(u64(dv, at + ELF.shdr.offset)),
      size: Number(u64(dv, at + ELF.shdr.size)),
      link: dv.getUint32(at + ELF.shdr.link, true),
      entsize: Number(u64(dv, at + ELF.shdr.entsize)),
    };
  };
  for (let i = 0; i < shnum; i++) {
    const symtab = section(i);
    if (symtab.type !== ELF.SHT_SYMTAB || symtab.link >= shnum || symtab.entsize !== ELF.symSize) continue;
    if (symtab.offset + symtab.size > bytes.length) continue;
    const strtab = section(symtab.link);
    if (strtab.offset + strtab.size > bytes.length) continue;
    for (let at = symtab.offset; at + ELF.symSize <= symtab.offset + symtab.size; at += ELF.symSize) {
      const shndx = dv.getUint16(at + ELF.sym.shndx, true);
      if (shndx === 0) continue; // undefined symbol
      const nameOff = dv.getUint32(at + ELF.sym.name, true);
      const s = strtab.offset + nameOff;
      if (nameOff + wanted.length >= strtab.size) continue;
      let match = bytes[s + wanted.length] === 0;
      for (let k = 0; match && k < wanted.length; k++) match = bytes[s + k] === wanted[k];
      if (!match) continue;
      const value = u64(dv, at + ELF.sym.value);
      return { name, value, size: Number(u64(dv, at + ELF.sym.size)), paddr: virtToPhys(elf, value) };
    }
  }
  return undefined;
}
