import { readLinear, type GuestMemory } from './paging.js';
import { CR0_PE, EFER_LMA, type VcpuRegs, type VcpuSregs } from './state.js';

/** The longest x86 instruction. */
export const MAX_INSN_LENGTH = 15;

/** The linear address of CS:RIP in the vCPU's current mode. */
export function instructionPointer(regs: Pick<VcpuRegs, 'rip'>, sregs: Pick<VcpuSregs, 'cr0' | 'efer' | 'cs'>): bigint {
  if ((sregs.efer & EFER_LMA) !== 0n && sregs.cs.l === 1) return regs.rip; // 64-bit: CS base is 0
  // Real mode (KVM keeps CS.base = selector << 4, or 0xffff0000 at reset) and 16-bit protected mode use IP.
  const ip = (sregs.cr0 & CR0_PE) !== 0n && sregs.cs.db === 1 ? regs.rip & 0xffff_ffffn : regs.rip & 0xffffn;
  return (sregs.cs.base + ip) & 0xffff_ffffn;
}

/**
 * The bytes at CS:RIP (up to 15, fewer if a page is not mapped), read through the guest's page
 * tables: what an internal-error report shows when KVM did not supply the instruction bytes.
 */
export function fetchInstructionBytes(
  mem: GuestMemory,
  regs: Pick<VcpuRegs, 'rip'>,
  sregs: Pick<VcpuSregs, 'cr0' | 'cr3' | 'cr4' | 'efer' | 'cs'>,
  max = MAX_INSN_LENGTH,
): Uint8Array {
  return readLinear(mem, sregs, instructionPointer(regs, sregs), max);
}
