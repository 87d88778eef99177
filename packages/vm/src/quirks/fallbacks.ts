import { GPR_BY_NUMBER, RFLAGS, U64_MASK, cpl, in64BitMode, type VcpuRegs, type VcpuSregs } from '../cpu/state.js';

/** Exception vectors the fallbacks inject. */
export const Vector = { UD: 6, BP: 3, NM: 7 } as const;

/** An instruction the PVM CPL0 emulator lacks and the VMM completes instead (README.md, host quirks 3-4). */
export type Fallback =
  | { kind: 'int3'; length: 1 }
  | { kind: 'clac'; length: 3 }
  | { kind: 'stac'; length: 3 }
  | { kind: 'fwait'; length: 1 }
  | { kind: 'popcnt'; length: number; operandBits: 16 | 32 | 64; dest: number; src: number };

const LEGACY_PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/**
 * Recognizes the instructions at `bytes` (CS:RIP) that a fallback handles: `int3` (cc), `clac`
 * (0f 01 ca), `stac` (0f 01 cb), `fwait` (9b) and register-to-register `popcnt` (f3 [rex] 0f b8 /r,
 * ModRM.mod = 3, 16/32/64-bit). Anything else, including a locked or memory-operand popcnt, is
 * undefined: the exit stays an internal error.
 */
export function decodeFallback(bytes: Uint8Array, longMode: boolean): Fallback | undefined {
  if (bytes.length === 0) return undefined;
  if (bytes[0] === 0xcc) return { kind: 'int3', length: 1 };
  if (bytes[0] === 0x9b) return { kind: 'fwait', length: 1 };
  if (bytes.length >= 3 && bytes[0] === 0x0f && bytes[1] === 0x01) {
    if (bytes[2] === 0xca) return { kind: 'clac', length: 3 };
    if (bytes[2] === 0xcb) return { kind: 'stac', length: 3 };
  }
  return decodePopcnt(bytes, longMode);
}

function decodePopcnt(bytes: Uint8Array, longMode: boolean): Fallback | undefined {
  let i = 0;
  let opsize = false;
  let rep = false;
  let repne = false;
  let lock = false;
  while (i < bytes.length && i < 14 && LEGACY_PREFIXES.has(bytes[i])) {
    const p = bytes[i++];
    if (p === 0x66) opsize = true;
    else if (p === 0xf3) rep = true;
    else if (p === 0xf2) repne = true;
    else if (p === 0xf0) lock = true;
  }
  if (!rep || repne || lock) return undefined;
  let rex = 0;
  if (longMode && i < bytes.length && (bytes[i] & 0xf0) === 0x40) rex = bytes[i++];
  if (i + 3 > bytes.length || bytes[i] !== 0x0f || bytes[i + 1] !== 0xb8) return undefined;
  const modrm = bytes[i + 2];
  if (modrm >> 6 !== 3) return undefined; // memory operand: not handled
  const length = i + 3;
  if (length > 15) return undefined;
  const w = (rex & 0x08) !== 0;
  const dest = ((modrm >> 3) & 7) | ((rex & 0x04) << 1);
  const src = (modrm & 7) | ((rex & 0x01) << 3);
  const operandBits = w ? 64 : opsize ? 16 : 32;
  return { kind: 'popcnt', length, operandBits, dest, src };
}

function popcount64(v: bigint): number {
  let n = 0;
  for (let x = v; x !== 0n; x &= x - 1n) n++;
  return n;
}

/** RIP advanced by `n`, wrapped to the current code size. */
export function advanceRip(regs: Pick<VcpuRegs, 'rip'>, sregs: Pick<VcpuSregs, 'efer' | 'cs'>, n: number): bigint {
  const next = regs.rip + BigInt(n);
  if (in64BitMode(sregs)) return next & U64_MASK;
  return sregs.cs.db === 1 ? next & 0xffff_ffffn : next & 0xffffn;
}

/** What completing an instruction does to the vCPU: new registers, and maybe an exception to inject. */
export interface FallbackEffect {
  regs: VcpuRegs;
  /** Inject this exception (KVM_SET_VCPU_EVENTS: exception.injected = 1, nr = vector). */
  inject?: { vector: number };
}

/**
 * Completes `f` on a copy of `regs`, as the CPU would have:
 * - int3: RIP past it and #BP injected (a trap: the handler sees the next RIP, as on hardware);
 * - clac/stac: RFLAGS.AC cleared/set, RIP += 3; at CPL > 0 they #UD, as on hardware;
 * - fwait: RIP += 1, or #NM when CR0.TS and CR0.MP are both set;
 * - popcnt: dest = number of set bits of src (32-bit results zero-extend, 16-bit ones merge),
 *   ZF = (src == 0), CF/PF/AF/SF/OF cleared.
 */
export function applyFallback(f: Fallback, regs: VcpuRegs, sregs: Pick<VcpuSregs, 'efer' | 'cs' | 'cr0'>): FallbackEffect {
  const out = { ...regs };
  switch (f.kind) {
    case 'int3':
      out.rip = advanceRip(regs, sregs, 1);
      return { regs: out, inject: { vector: Vector.BP } };
    case 'clac':
    case 'stac':
      if (cpl(sregs) !== 0) return { regs: out, inject: { vector: Vector.UD } };
      out.rflags = f.kind === 'clac' ? regs.rflags & ~RFLAGS.AC : regs.rflags | RFLAGS.AC;
      out.rip = advanceRip(regs, sregs, 3);
      return { regs: out };
    case 'fwait': {
      const CR0_MP = 1n << 1n;
      const CR0_TS = 1n << 3n;
      if ((sregs.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) return { regs: out, inject: { vector: Vector.NM } };
      out.rip = advanceRip(regs, sregs, 1);
      return { regs: out };
    }
    case 'popcnt': {
      const mask = (1n << BigInt(f.operandBits)) - 1n;
      const src = regs[GPR_BY_NUMBER[f.src]] & mask;
      const count = BigInt(popcount64(src));
      const destName = GPR_BY_NUMBER[f.dest];
      out[destName] = f.operandBits === 16 ? (regs[destName] & ~0xffffn) | count : count;
      const cleared = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
      out.rflags = (regs.rflags & ~cleared) | (src === 0n ? RFLAGS.ZF : 0n);
      out.rip = advanceRip(regs, sregs, f.length);
      return { regs: out };
    }
  }
}
