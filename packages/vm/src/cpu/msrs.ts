/** MSR indices (Linux arch/x86/include/asm/msr-index.h). */
export const Msr = {
  IA32_TSC: 0x10,
  IA32_APIC_BASE: 0x1b,
  IA32_SYSENTER_CS: 0x174,
  IA32_SYSENTER_ESP: 0x175,
  IA32_SYSENTER_EIP: 0x176,
  IA32_MISC_ENABLE: 0x1a0,
  MTRR_DEF_TYPE: 0x2ff,
  EFER: 0xc000_0080,
  STAR: 0xc000_0081,
  LSTAR: 0xc000_0082,
  CSTAR: 0xc000_0083,
  SYSCALL_MASK: 0xc000_0084,
  FS_BASE: 0xc000_0100,
  GS_BASE: 0xc000_0101,
  KERNEL_GS_BASE: 0xc000_0102,
} as const;

/** IA32_MISC_ENABLE bit 0: fast string operations (rep movs/stos) enabled. */
export const MISC_ENABLE_FAST_STRING = 1n;
/** MTRRdefType: E (bit 11) = MTRRs enabled; type 6 = write-back default. */
export const MTRR_ENABLE = 1n << 11n;
export const MTRR_TYPE_WRBACK = 6n;

/** = `struct kvm_msr_entry` (index + data). */
export type { MsrEntry } from '@hype/kvm';
import type { MsrEntry } from '@hype/kvm';

export interface BootMsrOptions {
  /** Add MTRRdefType = enabled, write-back (when the guest's CPUID has MTRR), as Firecracker and Cloud Hypervisor do. */
  mtrr?: boolean;
}

/**
 * The MSRs every vCPU gets before its first KVM_RUN, Firecracker's `create_boot_msr_entries`:
 * SYSENTER_*, STAR/LSTAR/CSTAR/SYSCALL_MASK and KERNEL_GS_BASE zeroed (the kernel programs them),
 * TSC = 0, MISC_ENABLE with fast strings, and MTRRdefType = write-back when requested.
 */
export function bootMsrs(opts: BootMsrOptions = {}): MsrEntry[] {
  const zero = (index: number): MsrEntry => ({ index, data: 0n });
  const entries: MsrEntry[] = [
    zero(Msr.IA32_SYSENTER_CS),
    zero(Msr.IA32_SYSENTER_ESP),
    zero(Msr.IA32_SYSENTER_EIP),
    zero(Msr.STAR),
    zero(Msr.CSTAR),
    zero(Msr.KERNEL_GS_BASE),
    zero(Msr.SYSCALL_MASK),
    zero(Msr.LSTAR),
    zero(Msr.IA32_TSC),
    { index: Msr.IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING },
  ];
  if (opts.mtrr) entries.push({ index: Msr.MTRR_DEF_TYPE, data: MTRR_ENABLE | MTRR_TYPE_WRBACK });
  return entries;
}
