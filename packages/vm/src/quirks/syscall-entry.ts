/**
 * The PVM user-`syscall` fix (README.md, host quirk 5).
 *
 * PVM bug: a guest user-mode `syscall` jumps to MSR_LSTAR but stays at CPL3, so the kernel's
 * `entry_SYSCALL_64` instruction fetch page-faults (user CS, RIP = LSTAR) and init dies. Fix: an
 * `int3` planted over the first instruction of `asm_exc_page_fault` makes every #PF entry an
 * emulation-failure exit. There, the hardware exception frame on the kernel stack tells a broken
 * syscall (user CS, faulting RIP = LSTAR) from a real page fault: the former is rewritten into the
 * CPL0 entry a real `syscall` makes; the latter steps over the displaced instruction and runs the
 * real handler.
 */
import { readLinear, translate, type GuestMemory } from '../cpu/paging.js';
import { EFER_LMA, RFLAGS, in64BitMode, type VcpuRegs, type VcpuSegment, type VcpuSregs } from '../cpu/state.js';
import { advanceRip } from './fallbacks.js';

export const INT3 = 0xcc;
export const PAGE_FAULT_VECTOR = 14;

/**
 * #PF exception frame pushed by the CPU (64-bit mode, with error code), at RSP when the handler's
 * first instruction runs (Intel SDM vol. 3A §6.14.2, figure 6-9).
 */
export const PF_FRAME = {
  ERROR_CODE: 0,
  RIP: 8,
  CS: 16,
  RFLAGS: 24,
  RSP: 32,
  SS: 40,
  SIZE: 48,
} as const;

/** The #PF handler's first-instruction slot contents we know how to step over. */
export type DisplacedInstruction = { length: number; effect: 'none' | 'clac' | 'stac'; name: string };

const KNOWN_SLOTS: { bytes: number[]; insn: DisplacedInstruction }[] = [
  // ASM_CLAC's ALTERNATIVE: on disk three 0x90 (patched by optimize_nops at boot), then a 3-byte NOP or clac.
  { bytes: [0x0f, 0x1f, 0x00], insn: { length: 3, effect: 'none', name: 'nopl (%rax)' } },
  { bytes: [0x0f, 0x01, 0xca], insn: { length: 3, effect: 'clac', name: 'clac' } },
  { bytes: [0x0f, 0x01, 0xcb], insn: { length: 3, effect: 'stac', name: 'stac' } },
  { bytes: [0x66, 0x90], insn: { length: 2, effect: 'none', name: 'xchg %ax,%ax' } },
  { bytes: [0x90], insn: { length: 1, effect: 'none', name: 'nop' } },
  // CONFIG_X86_KERNEL_IBT puts ENDBR64 first.
  { bytes: [0xf3, 0x0f, 0x1e, 0xfa], insn: { length: 4, effect: 'none', name: 'endbr64' } },
];

/** Decodes the instruction at the start of `bytes` if it is one a trap may displace. */
export function decodeDisplaced(bytes: Uint8Array): DisplacedInstruction | undefined {
  for (const slot of KNOWN_SLOTS) {
    if (bytes.length >= slot.bytes.length && slot.bytes.every((b, i) => bytes[i] === b)) return slot.insn;
  }
  return undefined;
}

/** Where the trap goes: the handler's kernel virtual address and the guest-physical byte behind it. */
export interface TrapSite {
  gva: bigint;
  gpa: number;
}

/**
 * Gate 14 of the guest's IDT (64-bit interrupt/trap gate, 16 bytes: offset 15:0 at +0, selector at
 * +2, type/attributes at +5, offset 31:16 at +6, offset 63:32 at +8), read through the guest's page
 * tables. Undefined unless in long mode with a present 64-bit interrupt or trap gate.
 */
export function pageFaultHandlerFromIdt(mem: GuestMemory, sregs: VcpuSregs): bigint | undefined {
  if ((sregs.efer & EFER_LMA) === 0n) return undefined;
  const offset = PAGE_FAULT_VECTOR * 16;
  if (sregs.idt.limit < offset + 15) return undefined;
  const gate = readLinear(mem, sregs, sregs.idt.base + BigInt(offset), 16);
  if (gate.length !== 16) return undefined;
  const dv = new DataView(gate.buffer, gate.byteOffset, 16);
  const attrs = gate[5];
  const type = attrs & 0x0f;
  if ((attrs & 0x80) === 0 || (type !== 0xe && type !== 0xf)) return undefined;
  return BigInt(dv.getUint16(0, true)) | (BigInt(dv.getUint16(6, true)) << 16n) | (BigInt(dv.getUint32(8, true)) << 32n);
}

/** The trap site for the handler the guest's IDT points #PF at, if the IDT and the handler are mapped. */
export function trapSiteFromIdt(mem: GuestMemory, sregs: VcpuSregs): TrapSite | undefined {
  const gva = pageFaultHandlerFromIdt(mem, sregs);
  if (gva === undefined) return undefined;
  const t = translate(mem, sregs, gva);
  return t ? { gva, gpa: t.gpa } : undefined;
}

export type PlantResult =
  | { planted: true; trap: PageFaultTrap }
  | { planted: false; reason: string };

/** An int3 over the first byte of the guest's #PF handler, and what it displaced. */
export class PageFaultTrap {
  private constructor(
    readonly site: TrapSite,
    /** The instruction whose first byte the int3 replaced, decoded when planting. */
    public displaced: DisplacedInstruction,
    /** The byte the int3 replaced (restored by `remove`). */
    public displacedByte: number,
  ) {}

  /** Plants the trap if the handler starts with an instruction we can step over. */
  static plant(mem: GuestMemory, site: TrapSite): PlantResult {
    const bytes = mem.view(site.gpa, 4) ?? mem.view(site.gpa, 1);
    if (!bytes) return { planted: false, reason: `handler at gpa 0x${site.gpa.toString(16)} is outside guest RAM` };
    const displaced = decodeDisplaced(bytes);
    if (!displaced) {
      const seen = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      return { planted: false, reason: `handler at 0x${site.gva.toString(16)} starts with ${seen}, not a NOP/clac slot` };
    }
    const trap = new PageFaultTrap(site, displaced, bytes[0]);
    bytes[0] = INT3;
    return { planted: true, trap };
  }

  /** Whether the int3 is still in guest memory. */
  isArmed(mem: GuestMemory): boolean {
    return mem.view(this.site.gpa, 1)?.[0] === INT3;
  }

  /**
   * Re-plants the int3 if the guest rewrote the slot (kernel alternatives patching), re-decoding what
   * is there now. Returns whether the trap is armed afterwards.
   */
  rearm(mem: GuestMemory): boolean {
    if (this.isArmed(mem)) return true;
    const bytes = mem.view(this.site.gpa, 4) ?? mem.view(this.site.gpa, 1);
    const displaced = bytes && decodeDisplaced(bytes);
    if (!bytes || !displaced) return false;
    this.displaced = displaced;
    this.displacedByte = bytes[0];
    bytes[0] = INT3;
    return true;
  }

  /** Puts the displaced byte back. */
  remove(mem: GuestMemory): void {
    const b = mem.view(this.site.gpa, 1);
    if (b && b[0] === INT3) b[0] = this.displacedByte;
  }
}

/** The syscall MSRs the rewrite needs (read lazily: most trap hits are ordinary page faults). */
export interface SyscallMsrs {
  star: bigint;
  lstar: bigint;
  /** IA32_FMASK (MSR_SYSCALL_MASK). */
  sfmask: bigint;
}

export interface PageFaultFrame {
  errorCode: bigint;
  rip: bigint;
  cs: bigint;
  rflags: bigint;
  rsp: bigint;
  ss: bigint;
}

/** Reads the #PF frame at RSP; undefined if any of it is unmapped. */
export function readPageFaultFrame(mem: GuestMemory, regs: Pick<VcpuRegs, 'rsp'>, sregs: VcpuSregs): PageFaultFrame | undefined {
  const b = readLinear(mem, sregs, regs.rsp, PF_FRAME.SIZE);
  if (b.length !== PF_FRAME.SIZE) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const q = (at: number) => dv.getBigUint64(at, true);
  return {
    errorCode: q(PF_FRAME.ERROR_CODE),
    rip: q(PF_FRAME.RIP),
    cs: q(PF_FRAME.CS),
    rflags: q(PF_FRAME.RFLAGS),
    rsp: q(PF_FRAME.RSP),
    ss: q(PF_FRAME.SS),
  };
}

/** The flat 64-bit kernel code segment `syscall` loads (Intel SDM, SYSCALL: CS = STAR[47:32] & ~3). */
export function syscallCodeSegment(star: bigint): VcpuSegment {
  const selector = Number((star >> 32n) & 0xfffcn);
  return { base: 0n, limit: 0xffff_ffff, selector, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 };
}

/** The flat kernel stack segment `syscall` loads (SS = STAR[47:32] + 8). */
export function syscallStackSegment(star: bigint): VcpuSegment {
  const selector = Number(((star >> 32n) + 8n) & 0xffffn);
  return { base: 0n, limit: 0xffff_ffff, selector, type: 0x3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 };
}

export type TrapDecision =
  | { action: 'syscall-entry'; regs: VcpuRegs; sregs: VcpuSregs; frame: PageFaultFrame }
  | { action: 'page-fault'; regs: VcpuRegs; frame?: PageFaultFrame; why: string };

/**
 * Decides what a hit of the planted trap (RIP = trap address, at CPL0 in the #PF handler) means.
 *
 * Broken syscall when: 64-bit mode, the frame's CS has RPL 3 and its RIP equals LSTAR. Two more
 * checks keep a user program that merely jumps to LSTAR from gaining anything a real syscall would
 * not give it (sysret loads RFLAGS from R11): R11 must have IF set and must not carry a higher IOPL
 * than the user actually runs with. The vCPU then becomes exactly what `syscall` produces:
 * CS/SS from STAR, RIP = LSTAR, RSP = the user RSP (syscall does not switch stacks; the #PF frame
 * pushed on the kernel stack is abandoned), RFLAGS = frame RFLAGS & ~FMASK (RF cleared); RCX and
 * R11 stay as the buggy syscall set them.
 *
 * Otherwise (a real page fault, or an unreadable frame): step over the displaced instruction and
 * let the kernel's handler run.
 */
export function decideTrapHit(
  mem: GuestMemory,
  regs: VcpuRegs,
  sregs: VcpuSregs,
  trap: PageFaultTrap,
  readMsrs: () => SyscallMsrs,
): TrapDecision {
  const stepped = (why: string, frame?: PageFaultFrame): TrapDecision => {
    const out = { ...regs, rip: advanceRip(regs, sregs, trap.displaced.length) };
    if (trap.displaced.effect === 'clac') out.rflags &= ~RFLAGS.AC;
    if (trap.displaced.effect === 'stac') out.rflags |= RFLAGS.AC;
    return { action: 'page-fault', regs: out, frame, why };
  };
  if (!in64BitMode(sregs)) return stepped('not in 64-bit mode');
  const frame = readPageFaultFrame(mem, regs, sregs);
  if (!frame) return stepped('exception frame unreadable');
  if ((frame.cs & 3n) !== 3n) return stepped('fault from kernel mode', frame);
  const msrs = readMsrs();
  if (frame.rip !== msrs.lstar) return stepped('user fault away from LSTAR', frame);
  if ((regs.r11 & RFLAGS.IF) === 0n) return stepped('R11 has IF clear: not a syscall from user mode', frame);
  if ((regs.r11 & RFLAGS.IOPL) > (frame.rflags & RFLAGS.IOPL)) return stepped('R11 claims a higher IOPL than the user has', frame);

  const outRegs: VcpuRegs = {
    ...regs,
    rip: msrs.lstar,
    rsp: frame.rsp,
    rflags: (frame.rflags & ~msrs.sfmask & ~RFLAGS.RF) | RFLAGS.RESERVED1,
  };
  const outSregs: VcpuSregs = { ...sregs, cs: syscallCodeSegment(msrs.star), ss: syscallStackSegment(msrs.star) };
  return { action: 'syscall-entry', regs: outRegs, sregs: outSregs, frame };
}
