import type { DescriptorTable, Regs, Segment, Sregs } from '@hype/kvm';

/**
 * A vCPU's architectural state as @hype/vm reasons about it: shaped after KVM's `kvm_regs` /
 * `kvm_sregs`, with every 64-bit register a bigint (kernel addresses are above 2^53). @hype/kvm's
 * get/set results map onto these field by field.
 */

/** = `struct kvm_regs` (@hype/kvm's Regs). */
export type VcpuRegs = Regs;

/** General-purpose registers in ModRM/REX encoding order (0 = rax ... 15 = r15). */
export const GPR_BY_NUMBER = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const satisfies readonly (keyof VcpuRegs)[];

/** = `struct kvm_segment` (@hype/kvm's Segment). */
export type VcpuSegment = Segment;

/** = `struct kvm_dtable`. */
export type VcpuDtable = DescriptorTable;

/** = `struct kvm_sregs`; the interrupt bitmap is optional here since @hype/vm never edits it. */
export type VcpuSregs = Omit<Sregs, 'interruptBitmap'> & Partial<Pick<Sregs, 'interruptBitmap'>>;

/** The paging-relevant part of the sregs. */
export type PagingRegs = Pick<VcpuSregs, 'cr0' | 'cr3' | 'cr4' | 'efer'>;

export const RFLAGS = {
  CF: 1n << 0n,
  RESERVED1: 1n << 1n,
  PF: 1n << 2n,
  AF: 1n << 4n,
  ZF: 1n << 6n,
  SF: 1n << 7n,
  TF: 1n << 8n,
  IF: 1n << 9n,
  DF: 1n << 10n,
  OF: 1n << 11n,
  IOPL: 3n << 12n,
  NT: 1n << 14n,
  RF: 1n << 16n,
  VM: 1n << 17n,
  AC: 1n << 18n,
  VIF: 1n << 19n,
  VIP: 1n << 20n,
  ID: 1n << 21n,
} as const;

export const CR0_PE = 1n << 0n;
export const CR0_PG = 1n << 31n;
export const CR4_PSE = 1n << 4n;
export const CR4_PAE = 1n << 5n;
export const CR4_LA57 = 1n << 12n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;

export const U64_MASK = (1n << 64n) - 1n;

/** The current privilege level: CS.RPL in protected/long mode (SS.DPL would do too), 0 in real mode. */
export function cpl(sregs: Pick<VcpuSregs, 'cr0' | 'cs'>): number {
  return (sregs.cr0 & CR0_PE) === 0n ? 0 : sregs.cs.selector & 3;
}

/** Whether the vCPU executes 64-bit code (long mode active and CS.L set). */
export function in64BitMode(sregs: Pick<VcpuSregs, 'efer' | 'cs'>): boolean {
  return (sregs.efer & EFER_LMA) !== 0n && sregs.cs.l === 1;
}
