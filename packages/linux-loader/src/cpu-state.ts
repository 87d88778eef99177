/**
 * The initial vCPU state as plain data, shaped after KVM's structs so @hype/vm can copy it field by field.
 * Every value is a plain number (all fit below 2^53).
 */

/** = `struct kvm_segment` (without its padding byte). Flags are 0 or 1. */
export interface Segment {
  base: number;
  /** Byte-granular limit as KVM wants it (a G=1 descriptor's 0xfffff becomes 0xffffffff). */
  limit: number;
  selector: number;
  /** The 4-bit descriptor type, e.g. 0xb = execute/read/accessed code, 0x3 = read/write/accessed data, 0xb = busy TSS for a system segment. */
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

/** = `struct kvm_dtable` (GDTR/IDTR). */
export interface DescriptorTable {
  base: number;
  limit: number;
}

/** = `struct kvm_regs`: all of them, for KVM_SET_REGS. */
export interface BootRegs {
  rax: number;
  rbx: number;
  rcx: number;
  rdx: number;
  rsi: number;
  rdi: number;
  rsp: number;
  rbp: number;
  r8: number;
  r9: number;
  r10: number;
  r11: number;
  r12: number;
  r13: number;
  r14: number;
  r15: number;
  rip: number;
  rflags: number;
}

/**
 * The `struct kvm_sregs` fields the boot sets. Apply it as Firecracker does: KVM_GET_SREGS, overwrite
 * exactly these fields (absolute values, not masks), KVM_SET_SREGS. The fields not listed here (ldt, cr2,
 * cr8, apic_base, interrupt_bitmap) keep the vCPU's values.
 */
export interface BootSregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: number;
  cr3: number;
  cr4: number;
  efer: number;
}

/** The boot CPU's entry state (the other vCPUs start from KVM's reset state and are woken by INIT/SIPI). */
export interface BootCpuState {
  regs: BootRegs;
  sregs: BootSregs;
}

export const CR0_PE = 1 << 0;
export const CR0_ET = 1 << 4;
export const CR0_PG = 0x8000_0000;
export const CR4_PAE = 1 << 5;
export const EFER_LME = 1 << 8;
export const EFER_LMA = 1 << 10;
/** RFLAGS bit 1 is reserved and always set; IF stays clear (boot.rst: interrupts disabled). */
export const RFLAGS_RESERVED = 1 << 1;
