import { PageTableBuilder, flatMemory } from './memory.js';
import { kernelSregs, zeroRegs } from './vcpu.js';
import type { VcpuRegs } from '../../src/cpu/state.js';

/** Linux x86-64 values: __KERNEL_CS 0x10, __USER32_CS 0x23 in STAR; SYSCALL_MASK as syscall_init() writes it. */
export const STAR = (0x23n << 48n) | (0x10n << 32n);
export const SFMASK = 0x257fd5n;
export const KERNEL_TEXT = 0xffff_ffff_8100_0000n;
export const KERNEL_TEXT_GPA = 0x40_0000;
export const PF_HANDLER = KERNEL_TEXT + 0xa00n; // asm_exc_page_fault
export const LSTAR = KERNEL_TEXT + 0x10_0000n; // entry_SYSCALL_64
export const IDT = 0xffff_fe00_0000_0000n;
export const IDT_GPA = 0x30_0000;
export const KSTACK = 0xffff_c900_0000_4000n;
export const KSTACK_GPA = 0x31_0000;

/**
 * A synthetic guest in the state Linux is in when the CPU has just vectored a #PF to
 * asm_exc_page_fault: kernel text mapped with a 2 MiB page, IDT gate 14 pointing at the handler,
 * a kernel stack page, and the hardware frame pushed at the top of it.
 */
export function guestKernel(opts: { slot?: number[] } = {}) {
  const ram = new Uint8Array(16 << 20);
  const mem = flatMemory(ram);
  const pt = new PageTableBuilder(ram, 0x10_0000);
  pt.map(KERNEL_TEXT, KERNEL_TEXT_GPA, 0x20_0000);
  pt.map(IDT, IDT_GPA);
  pt.map(KSTACK, KSTACK_GPA);
  const dv = new DataView(ram.buffer);
  const handlerGpa = KERNEL_TEXT_GPA + 0xa00;
  const slot = opts.slot ?? [0x90, 0x90, 0x90];
  ram.set(slot, handlerGpa);
  ram.set([0xfc], handlerGpa + slot.length); // cld
  writeGate(ram, 14, PF_HANDLER);
  const sregs = kernelSregs(BigInt(pt.root), { idt: { base: IDT, limit: 0xfff } });
  const msrs = new Map<number, bigint>([
    [0xc000_0081, STAR],
    [0xc000_0082, LSTAR],
    [0xc000_0084, SFMASK],
  ]);
  const msrReads: number[] = [];
  const readMsr = (i: number) => {
    msrReads.push(i);
    const v = msrs.get(i);
    if (v === undefined) throw new Error(`no MSR ${i.toString(16)}`);
    return v;
  };

  /** Pushes a #PF frame on the kernel stack and returns the vCPU's registers at the handler's first instruction. */
  function faultEntry(frame: { errorCode?: bigint; rip: bigint; cs: bigint; rflags: bigint; rsp: bigint; ss: bigint }, over: Partial<VcpuRegs> = {}): VcpuRegs {
    const top = KSTACK + 0x1000n;
    const rsp = top - 48n;
    const at = KSTACK_GPA + 0x1000 - 48;
    const vals = [frame.errorCode ?? 0x15n, frame.rip, frame.cs, frame.rflags, frame.rsp, frame.ss];
    vals.forEach((v, i) => dv.setBigUint64(at + i * 8, v, true));
    return zeroRegs({ rip: PF_HANDLER, rsp, rflags: 0x2n, ...over });
  }

  return { ram, mem, pt, dv, sregs, handlerGpa, readMsr, msrReads, faultEntry };
}

/** Writes a present 64-bit interrupt gate (type 0xE, DPL 0, selector 0x10) for `vector`. */
export function writeGate(ram: Uint8Array, vector: number, handler: bigint, attrs = 0x8e): void {
  const dv = new DataView(ram.buffer);
  const at = IDT_GPA + vector * 16;
  dv.setUint16(at, Number(handler & 0xffffn), true);
  dv.setUint16(at + 2, 0x10, true);
  ram[at + 4] = 0;
  ram[at + 5] = attrs;
  dv.setUint16(at + 6, Number((handler >> 16n) & 0xffffn), true);
  dv.setUint32(at + 8, Number((handler >> 32n) & 0xffff_ffffn), true);
  dv.setUint32(at + 12, 0, true);
}
