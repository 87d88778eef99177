import { describe, expect, it } from 'vitest';
import { RFLAGS } from '../src/cpu/state.js';
import {
  INT3,
  PF_FRAME,
  PageFaultTrap,
  decideTrapHit,
  decodeDisplaced,
  pageFaultHandlerFromIdt,
  readPageFaultFrame,
  syscallCodeSegment,
  syscallStackSegment,
  trapSiteFromIdt,
} from '../src/quirks/syscall-entry.js';
import { IDT, KERNEL_TEXT_GPA, KSTACK, LSTAR, PF_HANDLER, SFMASK, STAR, guestKernel, writeGate } from './helpers/guest-kernel.js';

const USER_SYSCALL = { rip: LSTAR, cs: 0x33n, rflags: 0x246n, rsp: 0x7ffc_dead_0000n, ss: 0x2bn };

function planted(slot?: number[]) {
  const g = guestKernel({ slot });
  const r = PageFaultTrap.plant(g.mem, { gva: PF_HANDLER, gpa: g.handlerGpa });
  if (!r.planted) throw new Error(r.reason);
  return { ...g, trap: r.trap };
}

const msrsOf = (g: ReturnType<typeof guestKernel>) => () => ({
  star: g.readMsr(0xc000_0081),
  lstar: g.readMsr(0xc000_0082),
  sfmask: g.readMsr(0xc000_0084),
});

describe('exception frame layout', () => {
  it('matches struct pt_regs from orig_ax on (arch/x86/include/asm/ptrace.h) and the SDM figure 6-9', () => {
    // pt_regs offsets: orig_ax 120, ip 128, cs 136, flags 144, sp 152, ss 160 (15 u64 registers before orig_ax)
    const ptRegs = { orig_ax: 15 * 8, ip: 16 * 8, cs: 17 * 8, flags: 18 * 8, sp: 19 * 8, ss: 20 * 8 };
    expect(PF_FRAME.ERROR_CODE).toBe(ptRegs.orig_ax - ptRegs.orig_ax);
    expect(PF_FRAME.RIP).toBe(ptRegs.ip - ptRegs.orig_ax);
    expect(PF_FRAME.CS).toBe(ptRegs.cs - ptRegs.orig_ax);
    expect(PF_FRAME.RFLAGS).toBe(ptRegs.flags - ptRegs.orig_ax);
    expect(PF_FRAME.RSP).toBe(ptRegs.sp - ptRegs.orig_ax);
    expect(PF_FRAME.SS).toBe(ptRegs.ss - ptRegs.orig_ax);
    expect(PF_FRAME.SIZE).toBe(48);
  });

  it('reads the frame through the page tables', () => {
    const g = guestKernel();
    const regs = g.faultEntry({ ...USER_SYSCALL, errorCode: 0x15n });
    expect(readPageFaultFrame(g.mem, regs, g.sregs)).toEqual({ errorCode: 0x15n, ...USER_SYSCALL });
    expect(readPageFaultFrame(g.mem, { rsp: KSTACK + 0x1000n - 40n }, g.sregs)).toBeUndefined(); // runs off the mapped page
  });
});

describe('IDT gate 14', () => {
  it('yields asm_exc_page_fault and its guest-physical address', () => {
    const g = guestKernel();
    expect(pageFaultHandlerFromIdt(g.mem, g.sregs)).toBe(PF_HANDLER);
    expect(trapSiteFromIdt(g.mem, g.sregs)).toEqual({ gva: PF_HANDLER, gpa: KERNEL_TEXT_GPA + 0xa00 });
  });

  it('is not used when absent, not present, not an interrupt/trap gate, beyond the limit, or outside long mode', () => {
    const g = guestKernel();
    expect(pageFaultHandlerFromIdt(g.mem, { ...g.sregs, idt: { base: IDT, limit: 14 * 16 + 14 } })).toBeUndefined();
    expect(pageFaultHandlerFromIdt(g.mem, { ...g.sregs, efer: 0n })).toBeUndefined();
    expect(pageFaultHandlerFromIdt(g.mem, { ...g.sregs, idt: { base: 0xffff_fe00_1000_0000n, limit: 0xfff } })).toBeUndefined();
    writeGate(g.ram, 14, PF_HANDLER, 0x0e);
    expect(pageFaultHandlerFromIdt(g.mem, g.sregs)).toBeUndefined();
    writeGate(g.ram, 14, PF_HANDLER, 0x8c); // call gate
    expect(pageFaultHandlerFromIdt(g.mem, g.sregs)).toBeUndefined();
    writeGate(g.ram, 14, PF_HANDLER, 0x8f); // trap gate is fine
    expect(pageFaultHandlerFromIdt(g.mem, g.sregs)).toBe(PF_HANDLER);
  });
});

describe('PageFaultTrap', () => {
  it('plants int3 over the on-disk 90 90 90 slot, displacing a 1-byte NOP', () => {
    const { ram, mem, trap, handlerGpa } = planted([0x90, 0x90, 0x90]);
    expect(ram[handlerGpa]).toBe(INT3);
    expect(trap.displaced).toMatchObject({ length: 1, effect: 'none' });
    expect(trap.isArmed(mem)).toBe(true);
    // Linux optimize_nops() then decodes int3 + 90 90 and rewrites the 2 NOPs: the trap survives.
    ram.set([0x66, 0x90], handlerGpa + 1);
    expect(trap.isArmed(mem)).toBe(true);
    trap.remove(mem);
    expect([...ram.subarray(handlerGpa, handlerGpa + 3)]).toEqual([0x90, 0x66, 0x90]);
  });

  it('plants over a patched 3-byte NOP or clac slot', () => {
    expect(planted([0x0f, 0x1f, 0x00]).trap.displaced).toMatchObject({ length: 3, effect: 'none' });
    expect(planted([0x0f, 0x01, 0xca]).trap.displaced).toMatchObject({ length: 3, effect: 'clac' });
    expect(planted([0xf3, 0x0f, 0x1e, 0xfa]).trap.displaced).toMatchObject({ length: 4, name: 'endbr64' });
  });

  it('refuses a handler that does not start with a known slot (e.g. the early IDT stub)', () => {
    const g = guestKernel({ slot: [0x6a, 0x0e, 0xe9] });
    const r = PageFaultTrap.plant(g.mem, { gva: PF_HANDLER, gpa: g.handlerGpa });
    expect(r).toMatchObject({ planted: false, reason: expect.stringMatching(/starts with 6a 0e e9/) });
    expect(g.ram[g.handlerGpa]).toBe(0x6a);
    expect(PageFaultTrap.plant(g.mem, { gva: PF_HANDLER, gpa: 1 << 30 })).toMatchObject({ planted: false, reason: expect.stringMatching(/outside guest RAM/) });
  });

  it('re-plants after the guest rewrote the whole slot, re-decoding it', () => {
    const { ram, mem, trap, handlerGpa } = planted([0x90, 0x90, 0x90]);
    ram.set([0x0f, 0x1f, 0x00], handlerGpa); // alternatives wrote a full 3-byte NOP over it
    expect(trap.isArmed(mem)).toBe(false);
    expect(trap.rearm(mem)).toBe(true);
    expect(trap.displaced.length).toBe(3);
    expect(ram[handlerGpa]).toBe(INT3);
    ram.set([0x55], handlerGpa); // something unknown: left alone
    expect(trap.rearm(mem)).toBe(false);
    expect(ram[handlerGpa]).toBe(0x55);
  });

  it('decodeDisplaced knows exactly the slot forms', () => {
    expect(decodeDisplaced(Uint8Array.of(0x0f, 0x01, 0xcb))?.effect).toBe('stac');
    expect(decodeDisplaced(Uint8Array.of(0x66, 0x90))?.length).toBe(2);
    expect(decodeDisplaced(Uint8Array.of(0x0f, 0x1f))).toBeUndefined();
    expect(decodeDisplaced(Uint8Array.of())).toBeUndefined();
  });
});

describe('decideTrapHit', () => {
  it('turns a PVM user syscall (user CS, RIP = LSTAR) into the CPL0 entry a real syscall makes', () => {
    const g = planted();
    const regs = g.faultEntry(USER_SYSCALL, { rcx: 0x40_1234n, r11: 0x246n, rax: 39n, rdi: 7n });
    const d = decideTrapHit(g.mem, regs, g.sregs, g.trap, msrsOf(g));
    expect(d.action).toBe('syscall-entry');
    if (d.action !== 'syscall-entry') return;
    expect(d.regs.rip).toBe(LSTAR);
    expect(d.regs.rsp).toBe(USER_SYSCALL.rsp);
    expect(d.regs.rflags).toBe((0x246n & ~SFMASK) | 2n);
    expect(d.regs.rflags & RFLAGS.IF).toBe(0n);
    expect(d.regs).toMatchObject({ rcx: 0x40_1234n, r11: 0x246n, rax: 39n, rdi: 7n });
    expect(d.sregs.cs).toMatchObject({ selector: 0x10, l: 1, db: 0, dpl: 0, type: 0xb, present: 1, base: 0n });
    expect(d.sregs.ss).toMatchObject({ selector: 0x18, dpl: 0, db: 1, type: 3, present: 1 });
    expect(d.sregs.idt).toEqual(g.sregs.idt);
  });

  it('STAR-derived segments follow the SDM (CS = STAR[47:32] & ~3, SS = STAR[47:32] + 8)', () => {
    expect(syscallCodeSegment(STAR).selector).toBe(0x10);
    expect(syscallStackSegment(STAR).selector).toBe(0x18);
    expect(syscallCodeSegment(0x0013_0000_0000_0000n | (0x0bn << 32n)).selector).toBe(0x08);
  });

  it('lets a real page fault continue into the handler past the displaced instruction', () => {
    const g = planted([0x0f, 0x1f, 0x00]);
    const kernelFault = g.faultEntry({ rip: 0xffff_ffff_8123_4567n, cs: 0x10n, rflags: 0x86n, rsp: KSTACK + 0x800n, ss: 0x18n });
    const d = decideTrapHit(g.mem, kernelFault, g.sregs, g.trap, msrsOf(g));
    expect(d).toMatchObject({ action: 'page-fault', why: 'fault from kernel mode' });
    expect(d.regs.rip).toBe(PF_HANDLER + 3n);
    expect(d.regs.rsp).toBe(kernelFault.rsp);
    expect(g.msrReads).toEqual([]); // MSRs only read for user faults
    const userFault = g.faultEntry({ rip: 0x40_1000n, cs: 0x33n, rflags: 0x246n, rsp: 0x7ffcn, ss: 0x2bn });
    expect(decideTrapHit(g.mem, userFault, g.sregs, g.trap, msrsOf(g))).toMatchObject({ action: 'page-fault', why: 'user fault away from LSTAR' });
  });

  it('steps over a displaced 1-byte NOP, or applies a displaced clac', () => {
    const g = planted([0x90, 0x90, 0x90]);
    const r = g.faultEntry({ rip: 0n, cs: 0x10n, rflags: 0n, rsp: 0n, ss: 0n });
    expect(decideTrapHit(g.mem, r, g.sregs, g.trap, msrsOf(g)).regs.rip).toBe(PF_HANDLER + 1n);
    const c = planted([0x0f, 0x01, 0xca]);
    const rc = c.faultEntry({ rip: 0n, cs: 0x10n, rflags: 0n, rsp: 0n, ss: 0n }, { rflags: 0x2n | RFLAGS.AC });
    const d = decideTrapHit(c.mem, rc, c.sregs, c.trap, msrsOf(c));
    expect(d.regs.rflags & RFLAGS.AC).toBe(0n);
    expect(d.regs.rip).toBe(PF_HANDLER + 3n);
  });

  it('does not grant a user jumping to LSTAR more than a real syscall (R11 checks)', () => {
    const g = planted();
    const ifClear = g.faultEntry(USER_SYSCALL, { r11: 0x46n });
    expect(decideTrapHit(g.mem, ifClear, g.sregs, g.trap, msrsOf(g))).toMatchObject({ action: 'page-fault' });
    const iopl = g.faultEntry(USER_SYSCALL, { r11: 0x3246n });
    expect(decideTrapHit(g.mem, iopl, g.sregs, g.trap, msrsOf(g))).toMatchObject({ action: 'page-fault', why: expect.stringMatching(/IOPL/) });
  });

  it('falls back to the handler when the frame cannot be read or the CPU is not in 64-bit mode', () => {
    const g = planted();
    const regs = g.faultEntry(USER_SYSCALL, { r11: 0x246n });
    const unmapped = { ...regs, rsp: 0xffff_c900_0100_0000n };
    expect(decideTrapHit(g.mem, unmapped, g.sregs, g.trap, msrsOf(g))).toMatchObject({ action: 'page-fault', why: 'exception frame unreadable' });
    const compat = { ...g.sregs, cs: { ...g.sregs.cs, l: 0 } };
    expect(decideTrapHit(g.mem, regs, compat, g.trap, msrsOf(g))).toMatchObject({ action: 'page-fault', why: 'not in 64-bit mode' });
  });
});
