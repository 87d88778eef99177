import type { CpuidEntry, Regs, Sregs, Vcpu } from '@hype/kvm';
import type { BootCpuState, Segment as BootSegment } from '@hype/linux-loader';
import { guestCpuid, hasMtrr } from '../cpu/cpuid.js';
import { bootMsrs } from '../cpu/msrs.js';
import type { VcpuSegment } from '../cpu/state.js';

/** Local APIC register offsets in the KVM_GET_LAPIC page (Intel SDM Vol. 3 table 11-1). */
const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_DELIVERY_MODE_SHIFT = 8;
const APIC_DELIVERY_MODE_MASK = 0x7 << APIC_DELIVERY_MODE_SHIFT;
const APIC_MODE_NMI = 0x4;
const APIC_MODE_EXTINT = 0x7;

/** x87 control word and MXCSR after FNINIT / reset (Firecracker's `setup_fpu`). */
const FPU_FCW = 0x37f;
const MXCSR_DEFAULT = 0x1f80;

export interface VcpuSetupOptions {
  vcpuCount: number;
  supportedCpuid: readonly CpuidEntry[];
  /** Last word on CPUID (the host-quirks layer masks bits here; identity on ordinary hosts). */
  adjustCpuid(entries: CpuidEntry[]): CpuidEntry[];
}

/** Per-vCPU state every vCPU needs before its first KVM_RUN: CPUID, MSRs, FPU, LAPIC LINT pins. */
export function configureVcpu(vcpu: Vcpu, opts: VcpuSetupOptions): void {
  const cpuid = opts.adjustCpuid(guestCpuid(opts.supportedCpuid, { vcpuIndex: vcpu.id, vcpuCount: opts.vcpuCount }));
  vcpu.setCpuid2(cpuid);
  vcpu.setMsrs(bootMsrs({ mtrr: hasMtrr(cpuid) }));
  vcpu.setFpu({ ...vcpu.getFpu(), fcw: FPU_FCW, mxcsr: MXCSR_DEFAULT });
  // LINT0 delivers the 8259's ExtINT, LINT1 NMIs: what the MP table's local interrupt entries promise.
  const lapic = vcpu.getLapic();
  const view = new DataView(lapic.buffer, lapic.byteOffset, lapic.byteLength);
  const setMode = (reg: number, mode: number) =>
    view.setUint32(reg, ((view.getUint32(reg, true) & ~APIC_DELIVERY_MODE_MASK) | (mode << APIC_DELIVERY_MODE_SHIFT)) >>> 0, true);
  setMode(APIC_LVT_LINT0, APIC_MODE_EXTINT);
  setMode(APIC_LVT_LINT1, APIC_MODE_NMI);
  vcpu.setLapic(lapic);
}

function segment(s: BootSegment): VcpuSegment {
  return { ...s, base: BigInt(s.base) };
}

/** Puts the boot vCPU in the loader's 64-bit entry state (the other vCPUs wait for INIT/SIPI). */
export function applyBootState(vcpu: Vcpu, state: BootCpuState): void {
  const sregs: Sregs = vcpu.getSregs();
  const s = state.sregs;
  vcpu.setSregs({
    ...sregs,
    cs: segment(s.cs),
    ds: segment(s.ds),
    es: segment(s.es),
    fs: segment(s.fs),
    gs: segment(s.gs),
    ss: segment(s.ss),
    tr: segment(s.tr),
    gdt: { base: BigInt(s.gdt.base), limit: s.gdt.limit },
    idt: { base: BigInt(s.idt.base), limit: s.idt.limit },
    cr0: BigInt(s.cr0),
    cr3: BigInt(s.cr3),
    cr4: BigInt(s.cr4),
    efer: BigInt(s.efer),
  });
  const r = state.regs;
  const regs = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, BigInt(v)])) as unknown as Regs;
  vcpu.setRegs(regs);
}
