/**
 * A vCPU's architectural state as @hype/vm reasons about it: shaped after KVM's `kvm_regs` /
 * `kvm_sregs`, with every 64-bit register a bigint (kernel addresses are above 2^53). @hype/kvm's
 * get/set results map onto these field by field.
 */

/** = `struct kvm_regs`. */
export interface VcpuRegs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

/** General-purpose registers in ModRM/REX encoding order (0 = rax ... 15 = r15). */
export const GPR_BY_NUMBER = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const satisfies readonly (keyof VcpuRegs)[];

/** = `struct kvm_segment`. Flag fields are 0 or 1. */
export interface VcpuSegment {
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

/** = `struct kvm_dtable`. */
export interface VcpuDtable {
  base: bigint;
  limit: number;
}

/** = `struct kvm_sregs` (without the interrupt bitmap, which @hype/vm never edits). */
export interface VcpuSregs {
  cs: VcpuSegment;
  ds: VcpuSegment;
  es: VcpuSegment;
  fs: VcpuSegment;
  gs: VcpuSegment;
  ss: VcpuSegment;
  tr: VcpuSegment;
  ldt: VcpuSegment;
  gdt: VcpuDtable;
  idt: VcpuDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

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
