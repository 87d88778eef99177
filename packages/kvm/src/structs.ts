// Typed x86 vCPU state <-> the KVM structs' bytes, through the named offsets of @hype/kvm-sys.
// 64-bit values are bigint (RIP in a higher-half kernel does not fit a double).
import { layout } from '@hype/kvm-sys';

const { kvm_regs, kvm_segment, kvm_dtable, kvm_sregs, kvm_fpu, kvm_msrs, kvm_msr_entry, kvm_cpuid2 } = layout;
const { kvm_cpuid_entry2, kvm_vcpu_events } = layout;

export interface Regs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint; rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export interface Sregs {
  cs: Segment; ds: Segment; es: Segment; fs: Segment; gs: Segment; ss: Segment; tr: Segment; ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint; efer: bigint;
  apicBase: bigint;
  /** Pending external interrupts, one bit per vector (4 x 64 bits). */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

export interface Fpu {
  /** 8 x 16 bytes (x87 registers in FXSAVE format). */
  fpr: Uint8Array;
  fcw: number;
  fsw: number;
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  /** 16 x 16 bytes (XMM0-15). */
  xmm: Uint8Array;
  mxcsr: number;
}

export interface MsrEntry {
  index: number;
  data: bigint;
}

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export interface VcpuEvents {
  exception: { injected: number; nr: number; hasErrorCode: number; pending: number; errorCode: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  /** KVM_VCPUEVENT_VALID_* bits saying which optional fields are meaningful. */
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
  tripleFault: { pending: number };
  exceptionHasPayload: number;
  exceptionPayload: bigint;
}

const REG_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const satisfies readonly (keyof Regs & keyof typeof kvm_regs)[];

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export function decodeRegs(bytes: Uint8Array): Regs {
  const v = view(bytes);
  const regs = {} as Regs;
  for (const name of REG_NAMES) regs[name] = v.getBigUint64(kvm_regs[name], true);
  return regs;
}

export function encodeRegs(regs: Regs): Uint8Array {
  const bytes = new Uint8Array(kvm_regs.size);
  const v = view(bytes);
  for (const name of REG_NAMES) v.setBigUint64(kvm_regs[name], BigInt.asUintN(64, regs[name]), true);
  return bytes;
}

function decodeSegment(v: DataView, at: number): Segment {
  const u8 = (field: number) => v.getUint8(at + field);
  return {
    base: v.getBigUint64(at + kvm_segment.base, true),
    limit: v.getUint32(at + kvm_segment.limit, true),
    selector: v.getUint16(at + kvm_segment.selector, true),
    type: u8(kvm_segment.type),
    present: u8(kvm_segment.present),
    dpl: u8(kvm_segment.dpl),
    db: u8(kvm_segment.db),
    s: u8(kvm_segment.s),
    l: u8(kvm_segment.l),
    g: u8(kvm_segment.g),
    avl: u8(kvm_segment.avl),
    unusable: u8(kvm_segment.unusable),
  };
}

function encodeSegment(v: DataView, at: number, segment: Segment): void {
  v.setBigUint64(at + kvm_segment.base, BigInt.asUintN(64, segment.base), true);
  v.setUint32(at + kvm_segment.limit, segment.limit >>> 0, true);
  v.setUint16(at + kvm_segment.selector, segment.selector, true);
  v.setUint8(at + kvm_segment.type, segment.type);
  v.setUint8(at + kvm_segment.present, segment.present);
  v.setUint8(at + kvm_segment.dpl, segment.dpl);
  v.setUint8(at + kvm_segment.db, segment.db);
  v.setUint8(at + kvm_segment.s, segment.s);
  v.setUint8(at + kvm_segment.l, segment.l);
  v.setUint8(at + kvm_segment.g, segment.g);
  v.setUint8(at + kvm_segment.avl, segment.avl);
  v.setUint8(at + kvm_segment.unusable, segment.unusable);
}

const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const CONTROL = [
  ['cr0', 'cr0'], ['cr2', 'cr2'], ['cr3', 'cr3'], ['cr4', 'cr4'], ['cr8', 'cr8'], ['efer', 'efer'],
  ['apicBase', 'apic_base'],
] as const;

export function decodeSregs(bytes: Uint8Array): Sregs {
  const v = view(bytes);
  const sregs = {} as Sregs;
  for (const name of SEGMENTS) sregs[name] = decodeSegment(v, kvm_sregs[name]);
  for (const name of ['gdt', 'idt'] as const) {
    sregs[name] = {
      base: v.getBigUint64(kvm_sregs[name] + kvm_dtable.base, true),
      limit: v.getUint16(kvm_sregs[name] + kvm_dtable.limit, true),
    };
  }
  for (const [name, field] of CONTROL) sregs[name] = v.getBigUint64(kvm_sregs[field], true);
  const bitmap = (i: number) => v.getBigUint64(kvm_sregs.interrupt_bitmap + 8 * i, true);
  sregs.interruptBitmap = [bitmap(0), bitmap(1), bitmap(2), bitmap(3)];
  return sregs;
}

export function encodeSregs(sregs: Sregs): Uint8Array {
  const bytes = new Uint8Array(kvm_sregs.size);
  const v = view(bytes);
  for (const name of SEGMENTS) encodeSegment(v, kvm_sregs[name], sregs[name]);
  for (const name of ['gdt', 'idt'] as const) {
    v.setBigUint64(kvm_sregs[name] + kvm_dtable.base, BigInt.asUintN(64, sregs[name].base), true);
    v.setUint16(kvm_sregs[name] + kvm_dtable.limit, sregs[name].limit, true);
  }
  for (const [name, field] of CONTROL) v.setBigUint64(kvm_sregs[field], BigInt.asUintN(64, sregs[name]), true);
  sregs.interruptBitmap.forEach((word, i) => v.setBigUint64(kvm_sregs.interrupt_bitmap + 8 * i, word, true));
  return bytes;
}

export function decodeFpu(bytes: Uint8Array): Fpu {
  const v = view(bytes);
  return {
    fpr: bytes.slice(kvm_fpu.fpr, kvm_fpu.fpr + 128),
    fcw: v.getUint16(kvm_fpu.fcw, true),
    fsw: v.getUint16(kvm_fpu.fsw, true),
    ftwx: v.getUint8(kvm_fpu.ftwx),
    lastOpcode: v.getUint16(kvm_fpu.last_opcode, true),
    lastIp: v.getBigUint64(kvm_fpu.last_ip, true),
    lastDp: v.getBigUint64(kvm_fpu.last_dp, true),
    xmm: bytes.slice(kvm_fpu.xmm, kvm_fpu.xmm + 256),
    mxcsr: v.getUint32(kvm_fpu.mxcsr, true),
  };
}

export function encodeFpu(fpu: Fpu): Uint8Array {
  if (fpu.fpr.length !== 128 || fpu.xmm.length !== 256) {
    throw new RangeError('Fpu.fpr must hold 128 bytes and Fpu.xmm 256 bytes');
  }
  const bytes = new Uint8Array(kvm_fpu.size);
  const v = view(bytes);
  bytes.set(fpu.fpr, kvm_fpu.fpr);
  v.setUint16(kvm_fpu.fcw, fpu.fcw, true);
  v.setUint16(kvm_fpu.fsw, fpu.fsw, true);
  v.setUint8(kvm_fpu.ftwx, fpu.ftwx);
  v.setUint16(kvm_fpu.last_opcode, fpu.lastOpcode, true);
  v.setBigUint64(kvm_fpu.last_ip, BigInt.asUintN(64, fpu.lastIp), true);
  v.setBigUint64(kvm_fpu.last_dp, BigInt.asUintN(64, fpu.lastDp), true);
  bytes.set(fpu.xmm, kvm_fpu.xmm);
  v.setUint32(kvm_fpu.mxcsr, fpu.mxcsr >>> 0, true);
  return bytes;
}

/** kvm_msrs with `entries` (data is ignored by KVM_GET_MSRS). */
export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const bytes = new Uint8Array(kvm_msrs.size + entries.length * kvm_msr_entry.size);
  const v = view(bytes);
  v.setUint32(kvm_msrs.nmsrs, entries.length, true);
  entries.forEach((entry, i) => {
    const at = kvm_msrs.entries + i * kvm_msr_entry.size;
    v.setUint32(at + kvm_msr_entry.index, entry.index >>> 0, true);
    v.setBigUint64(at + kvm_msr_entry.data, BigInt.asUintN(64, entry.data), true);
  });
  return bytes;
}

/** The first `count` entries of a kvm_msrs. */
export function decodeMsrs(bytes: Uint8Array, count: number): MsrEntry[] {
  const v = view(bytes);
  const entries: MsrEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = kvm_msrs.entries + i * kvm_msr_entry.size;
    entries.push({ index: v.getUint32(at + kvm_msr_entry.index, true), data: v.getBigUint64(at + kvm_msr_entry.data, true) });
  }
  return entries;
}

/** A kvm_cpuid2 with room for `capacity` entries, holding `entries`. */
export function encodeCpuid2(entries: readonly CpuidEntry[], capacity = entries.length): Uint8Array {
  const bytes = new Uint8Array(kvm_cpuid2.size + capacity * kvm_cpuid_entry2.size);
  const v = view(bytes);
  v.setUint32(kvm_cpuid2.nent, capacity, true);
  entries.forEach((entry, i) => {
    const at = kvm_cpuid2.entries + i * kvm_cpuid_entry2.size;
    v.setUint32(at + kvm_cpuid_entry2.function, entry.function >>> 0, true);
    v.setUint32(at + kvm_cpuid_entry2.index, entry.index >>> 0, true);
    v.setUint32(at + kvm_cpuid_entry2.flags, entry.flags >>> 0, true);
    v.setUint32(at + kvm_cpuid_entry2.eax, entry.eax >>> 0, true);
    v.setUint32(at + kvm_cpuid_entry2.ebx, entry.ebx >>> 0, true);
    v.setUint32(at + kvm_cpuid_entry2.ecx, entry.ecx >>> 0, true);
    v.setUint32(at + kvm_cpuid_entry2.edx, entry.edx >>> 0, true);
  });
  return bytes;
}

/** The entries of a kvm_cpuid2 (as many as its nent says). */
export function decodeCpuid2(bytes: Uint8Array): CpuidEntry[] {
  const v = view(bytes);
  const count = v.getUint32(kvm_cpuid2.nent, true);
  const entries: CpuidEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = kvm_cpuid2.entries + i * kvm_cpuid_entry2.size;
    entries.push({
      function: v.getUint32(at + kvm_cpuid_entry2.function, true),
      index: v.getUint32(at + kvm_cpuid_entry2.index, true),
      flags: v.getUint32(at + kvm_cpuid_entry2.flags, true),
      eax: v.getUint32(at + kvm_cpuid_entry2.eax, true),
      ebx: v.getUint32(at + kvm_cpuid_entry2.ebx, true),
      ecx: v.getUint32(at + kvm_cpuid_entry2.ecx, true),
      edx: v.getUint32(at + kvm_cpuid_entry2.edx, true),
    });
  }
  return entries;
}

export function decodeVcpuEvents(bytes: Uint8Array): VcpuEvents {
  const v = view(bytes);
  const u8 = (field: number) => v.getUint8(field);
  const e = kvm_vcpu_events;
  return {
    exception: {
      injected: u8(e.exception_injected),
      nr: u8(e.exception_nr),
      hasErrorCode: u8(e.exception_has_error_code),
      pending: u8(e.exception_pending),
      errorCode: v.getUint32(e.exception_error_code, true),
    },
    interrupt: { injected: u8(e.interrupt_injected), nr: u8(e.interrupt_nr), soft: u8(e.interrupt_soft), shadow: u8(e.interrupt_shadow) },
    nmi: { injected: u8(e.nmi_injected), pending: u8(e.nmi_pending), masked: u8(e.nmi_masked) },
    sipiVector: v.getUint32(e.sipi_vector, true),
    flags: v.getUint32(e.flags, true),
    smi: { smm: u8(e.smi_smm), pending: u8(e.smi_pending), smmInsideNmi: u8(e.smi_smm_inside_nmi), latchedInit: u8(e.smi_latched_init) },
    tripleFault: { pending: u8(e.triple_fault_pending) },
    exceptionHasPayload: u8(e.exception_has_payload),
    exceptionPayload: v.getBigUint64(e.exception_payload, true),
  };
}

export function encodeVcpuEvents(events: VcpuEvents): Uint8Array {
  const bytes = new Uint8Array(kvm_vcpu_events.size);
  const v = view(bytes);
  const e = kvm_vcpu_events;
  const u8 = (field: number, value: number) => v.setUint8(field, value);
  u8(e.exception_injected, events.exception.injected);
  u8(e.exception_nr, events.exception.nr);
  u8(e.exception_has_error_code, events.exception.hasErrorCode);
  u8(e.exception_pending, events.exception.pending);
  v.setUint32(e.exception_error_code, events.exception.errorCode >>> 0, true);
  u8(e.interrupt_injected, events.interrupt.injected);
  u8(e.interrupt_nr, events.interrupt.nr);
  u8(e.interrupt_soft, events.interrupt.soft);
  u8(e.interrupt_shadow, events.interrupt.shadow);
  u8(e.nmi_injected, events.nmi.injected);
  u8(e.nmi_pending, events.nmi.pending);
  u8(e.nmi_masked, events.nmi.masked);
  v.setUint32(e.sipi_vector, events.sipiVector >>> 0, true);
  v.setUint32(e.flags, events.flags >>> 0, true);
  u8(e.smi_smm, events.smi.smm);
  u8(e.smi_pending, events.smi.pending);
  u8(e.smi_smm_inside_nmi, events.smi.smmInsideNmi);
  u8(e.smi_latched_init, events.smi.latchedInit);
  u8(e.triple_fault_pending, events.tripleFault.pending);
  u8(e.exception_has_payload, events.exceptionHasPayload);
  v.setBigUint64(e.exception_payload, BigInt.asUintN(64, events.exceptionPayload), true);
  return bytes;
}

/** kvm_enable_cap for KVM_ENABLE_CAP (at most 4 args). */
export function encodeEnableCap(cap: number, args: readonly (number | bigint)[], flags: number): Uint8Array {
  const { kvm_enable_cap } = layout;
  if (args.length > 4) throw new RangeError('KVM_ENABLE_CAP takes at most 4 arguments');
  const bytes = new Uint8Array(kvm_enable_cap.size);
  const v = view(bytes);
  v.setUint32(kvm_enable_cap.cap, cap >>> 0, true);
  v.setUint32(kvm_enable_cap.flags, flags >>> 0, true);
  args.forEach((arg, i) => v.setBigUint64(kvm_enable_cap.args + 8 * i, BigInt.asUintN(64, BigInt(arg)), true));
  return bytes;
}
