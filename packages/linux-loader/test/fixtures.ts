/** Handmade kernel images for tests: a small ELF64 vmlinux look-alike and a bzImage around it. */
import { gzipSync } from 'node:zlib';

export interface FixtureSegment {
  vaddr: bigint;
  paddr: number;
  data: Uint8Array;
  /** Memory size; more than data.length means BSS. */
  memsz?: number;
  type?: number;
}

export interface FixtureElf {
  entry: bigint;
  segments: FixtureSegment[];
  symbols?: { name: string; value: bigint; size?: number; undefined?: boolean }[];
  /** Adds a PT_NOTE with a Xen PHYS32_ENTRY note. */
  pvhEntry?: number;
  elfClass?: number;
  machine?: number;
  type?: number;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

export function makeElf(spec: FixtureElf): Uint8Array {
  const segs = [...spec.segments];
  let note: Uint8Array | undefined;
  if (spec.pvhEntry !== undefined) {
    // An unrelated note first (type 1, "Linux"), then the PVH one: the parser must walk past it.
    const parts: number[] = [];
    const pushNote = (name: string, type: number, desc: number[]) => {
      const n = [...name].map((c) => c.charCodeAt(0)).concat([0]);
      const w = new DataView(new ArrayBuffer(12));
      w.setUint32(0, n.length, true);
      w.setUint32(4, desc.length, true);
      w.setUint32(8, type, true);
      parts.push(...new Uint8Array(w.buffer), ...n, ...new Array(align(n.length, 4) - n.length).fill(0), ...desc);
      parts.push(...new Array(align(desc.length, 4) - desc.length).fill(0));
    };
    pushNote('Linux', 1, [1, 2, 3]);
    const d = new DataView(new ArrayBuffer(4));
    d.setUint32(0, spec.pvhEntry, true);
    pushNote('Xen', 18, [...new Uint8Array(d.buffer)]);
    note = new Uint8Array(parts);
  }
  const phnum = segs.length + (note ? 1 : 0);
  let off = align(64 + phnum * 56, 16);
  const placed = segs.map((s) => {
    const at = off;
    off = align(off + s.data.length, 16);
    return at;
  });
  const noteAt = off;
  if (note) off = align(off + note.length, 16);

  // Symbol and string tables.
  const syms = spec.symbols ?? [];
  const strtab: number[] = [0];
  const nameOffsets = syms.map((s) => {
    const at = strtab.length;
    strtab.push(...new TextEncoder().encode(s.name), 0);
    return at;
  });
  const symtabAt = off;
  const symtabSize = (syms.length + 1) * 24;
  off = align(off + symtabSize, 16);
  const strtabAt = off;
  off = align(off + strtab.length, 16);
  const shoff = off;
  const shnum = syms.length ? 3 : 0;
  const total = shoff + shnum * 64;

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 2, 1, 1]);
  dv.setUint16(16, spec.type ?? 2, true);
  dv.setUint16(18, spec.machine ?? 62, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, spec.entry, true);
  dv.setBigUint64(32, 64n, true);
  dv.setBigUint64(40, BigInt(shnum ? shoff : 0), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, shnum, true);
  segs.forEach((s, i) => {
    const p = 64 + i * 56;
    dv.setUint32(p, s.type ?? 1, true);
    dv.setUint32(p + 4, 7, true);
    dv.setBigUint64(p + 8, BigInt(placed[i]), true);
    dv.setBigUint64(p + 16, s.vaddr, true);
    dv.setBigUint64(p + 24, BigInt(s.paddr), true);
    dv.setBigUint64(p + 32, BigInt(s.data.length), true);
    dv.setBigUint64(p + 40, BigInt(s.memsz ?? s.data.length), true);
    dv.setBigUint64(p + 48, 0x200000n, true);
    out.set(s.data, placed[i]);
  });
  if (note) {
    const p = 64 + segs.length * 56;
    dv.setUint32(p, 4, true);
    dv.setBigUint64(p + 8, BigInt(noteAt), true);
    dv.setBigUint64(p + 32, BigInt(note.length), true);
    dv.setBigUint64(p + 40, BigInt(note.length), true);
    dv.setBigUint64(p + 48, 4n, true);
    out.set(note, noteAt);
  }
  syms.forEach((s, i) => {
    const p = symtabAt + (i + 1) * 24;
    dv.setUint32(p, nameOffsets[i], true);
    out[p + 4] = 0x12; // GLOBAL FUNC
    dv.setUint16(p + 6, s.undefined ? 0 : 1, true);
    dv.setBigUint64(p + 8, s.value, true);
    dv.setBigUint64(p + 16, BigInt(s.size ?? 0), true);
  });
  out.set(strtab, strtabAt);
  if (shnum) {
    // [0] null, [1] .symtab -> link 2, [2] .strtab
    const sh = (i: number, type: number, offset: number, size: number, link: number, entsize: number) => {
      const p = shoff + i * 64;
      dv.setUint32(p + 4, type, true);
      dv.setBigUint64(p + 24, BigInt(offset), true);
      dv.setBigUint64(p + 32, BigInt(size), true);
      dv.setUint32(p + 40, link, true);
      dv.setBigUint64(p + 56, BigInt(entsize), true);
    };
    sh(1, 2, symtabAt, symtabSize, 2, 24);
    sh(2, 3, strtabAt, strtab.length, 0, 0);
  }
  return out;
}

/** A vmlinux look-alike: text at 16 MiB (virtual 0xffffffff81000000), data+BSS after it, symbols. */
export function smallVmlinux(): Uint8Array {
  const text = new Uint8Array(0x3000).map((_, i) => (i * 7 + 1) & 0xff);
  const data = new Uint8Array(0x1000).fill(0xdd);
  return makeElf({
    entry: 0x1000000n,
    segments: [
      { vaddr: 0xffffffff81000000n, paddr: 0x1000000, data: text },
      { vaddr: 0xffffffff81200000n, paddr: 0x1200000, data, memsz: 0x5000 },
    ],
    symbols: [
      { name: 'startup_64', value: 0xffffffff81000000n, size: 0x40 },
      { name: 'asm_exc_page_fault', value: 0xffffffff81001230n, size: 0x20 },
      { name: 'undefined_thing', value: 0n, undefined: true },
      { name: 'asm_exc_page_fault_tail', value: 0xffffffff81001250n },
    ],
    pvhEntry: 0x1000100,
  });
}

export interface FixtureBzImage {
  version?: number;
  setupSects?: number;
  loadflags?: number;
  xloadflags?: number;
  /** Payload (already compressed, including any appended size). Default: gzip of smallVmlinux(). */
  payload?: Uint8Array;
  initSize?: number;
  prefAddress?: number;
  kernelAlignment?: number;
  relocatable?: boolean;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  kernelVersion?: string;
}

export const gzipPayload = (elf: Uint8Array) => new Uint8Array(gzipSync(elf));

/** A bzImage with the given header values: setup sectors, then a stub "decompressor" and the payload. */
export function makeBzImage(spec: FixtureBzImage = {}): Uint8Array {
  const setupSects = spec.setupSects ?? 4;
  const effectiveSects = setupSects === 0 ? 4 : setupSects;
  const setupSize = (effectiveSects + 1) * 512;
  const payload = spec.payload ?? gzipPayload(smallVmlinux());
  const stub = 0x400; // stands in for the decompressor's code before the payload
  const pmSize = align(stub + payload.length + 16, 16);
  const out = new Uint8Array(setupSize + pmSize);
  const dv = new DataView(out.buffer);
  out[0x1f1] = setupSects;
  dv.setUint32(0x1f4, pmSize / 16, true);
  dv.setUint16(0x1fa, 0xffff, true);
  dv.setUint16(0x1fe, 0xaa55, true);
  out[0x200] = 0xeb;
  out[0x201] = 0x6a; // header ends at 0x26c
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, spec.version ?? 0x020f, true);
  if (spec.kernelVersion) {
    dv.setUint16(0x20e, 0x600 - 0x200, true);
    out.set(new TextEncoder().encode(spec.kernelVersion), 0x600);
  }
  out[0x211] = spec.loadflags ?? 1;
  dv.setUint32(0x214, 0x100000, true);
  dv.setUint32(0x22c, spec.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(0x230, spec.kernelAlignment ?? 0x200000, true);
  out[0x234] = spec.relocatable === false ? 0 : 1;
  out[0x235] = 21;
  dv.setUint16(0x236, spec.xloadflags ?? 0x7f, true);
  dv.setUint32(0x238, spec.cmdlineSize ?? 2047, true);
  dv.setUint32(0x248, stub, true);
  dv.setUint32(0x24c, payload.length, true);
  dv.setBigUint64(0x258, BigInt(spec.prefAddress ?? 0x1000000), true);
  dv.setUint32(0x260, spec.initSize ?? 0x800000, true);
  out.fill(0x90, setupSize, setupSize + stub);
  out.set(payload, setupSize + stub);
  return out;
}
