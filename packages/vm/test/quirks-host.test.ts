import { describe, expect, it } from 'vitest';
import { findCpuid, type CpuidEntry } from '../src/cpu/cpuid.js';
import { RFLAGS } from '../src/cpu/state.js';
import { PVM_CMDLINE_ADDITIONS, mergeCmdline, splitCmdline } from '../src/quirks/cmdline.js';
import { HOST_QUIRKS_ENV, KVM_PVM_MODULE_PATH, detectHostQuirks } from '../src/quirks/detect.js';
import { HostQuirks, IDT_PROBE_INTERVAL, type EmulationFailure } from '../src/quirks/host-quirks.js';
import { INT3 } from '../src/quirks/syscall-entry.js';
import { KERNEL_TEXT, KERNEL_TEXT_GPA, LSTAR, PF_HANDLER, guestKernel, writeGate } from './helpers/guest-kernel.js';
import { zeroRegs } from './helpers/vcpu.js';

const ON = { active: true, reason: 'test' };
const OFF = { active: false, reason: 'test' };

describe('detectHostQuirks', () => {
  const pvmHost = (p: string) => p === KVM_PVM_MODULE_PATH;
  const plainHost = () => false;

  it('is active exactly when /sys/module/kvm_pvm exists', () => {
    expect(detectHostQuirks({ env: {}, exists: pvmHost })).toMatchObject({ active: true, reason: expect.stringMatching(/kvm_pvm/) });
    expect(detectHostQuirks({ env: {}, exists: plainHost })).toMatchObject({ active: false });
  });

  it('can be forced either way by the environment or explicitly, explicit first', () => {
    expect(detectHostQuirks({ env: { [HOST_QUIRKS_ENV]: 'pvm' }, exists: plainHost }).active).toBe(true);
    expect(detectHostQuirks({ env: { [HOST_QUIRKS_ENV]: 'off' }, exists: pvmHost }).active).toBe(false);
    expect(detectHostQuirks({ env: { [HOST_QUIRKS_ENV]: 'auto' }, exists: pvmHost }).active).toBe(true);
    expect(detectHostQuirks({ mode: 'off', env: { [HOST_QUIRKS_ENV]: 'pvm' }, exists: pvmHost }).active).toBe(false);
    expect(detectHostQuirks({ mode: 'pvm', env: {}, exists: plainHost }).active).toBe(true);
  });

  it('names the variable and the choices for a bad value', () => {
    expect(() => detectHostQuirks({ env: { [HOST_QUIRKS_ENV]: 'yes' } })).toThrow(/HYPE_HOST_QUIRKS="yes" .* auto, pvm or off/);
  });
});

describe('cmdline', () => {
  it('adds the PVM parameters before any init arguments', () => {
    const out = mergeCmdline('console=ttyS0 reboot=k panic=-1 -- init-arg', PVM_CMDLINE_ADDITIONS);
    expect(out).toBe(
      'console=ttyS0 reboot=k panic=-1 noxsave clearcpuid=smap,popcnt,erms,fsrm random.trust_cpu=on pty.legacy_count=0 rodata=off lpj=5000000 -- init-arg',
    );
  });

  it("keeps the user's value for a parameter already set, and merges clearcpuid lists", () => {
    const out = mergeCmdline('lpj=123 clearcpuid=avx,smap', PVM_CMDLINE_ADDITIONS);
    const params = splitCmdline(out);
    expect(params.filter((p) => p.startsWith('lpj='))).toEqual(['lpj=123']);
    expect(params.filter((p) => p.startsWith('clearcpuid='))).toEqual(['clearcpuid=avx,smap,popcnt,erms,fsrm']);
    expect(params).toContain('noxsave');
  });

  it('keeps quoted values whole', () => {
    expect(splitCmdline('a="x y" b')).toEqual(['a="x y"', 'b']);
    expect(mergeCmdline('  ', ['noxsave'])).toBe('noxsave');
  });
});

function failure(g: ReturnType<typeof guestKernel>, regs = zeroRegs(), insnBytes?: Uint8Array): EmulationFailure {
  return { suberror: 1, regs, sregs: g.sregs, insnBytes, readMsr: g.readMsr };
}

describe('HostQuirks when inactive (ordinary KVM)', () => {
  it('changes nothing: cmdline, CPUID, guest memory, and handles no exit', () => {
    const g = guestKernel();
    const before = g.ram.slice();
    const q = new HostQuirks(g.mem, { detection: OFF });
    expect(q.cmdline('console=ttyS0')).toBe('console=ttyS0');
    const cpuid: CpuidEntry[] = [{ function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0xffff_ffff, edx: 0 }];
    expect(q.cpuid(cpuid)).toEqual(cpuid);
    expect(q.armSyscallTrapAt({ gva: PF_HANDLER, gpa: g.handlerGpa })).toMatchObject({ planted: false });
    expect(q.ensureSyscallTrap(() => g.sregs)).toBe(false);
    g.ram[0x40_1000] = INT3;
    expect(q.onEmulationFailure(failure(g, zeroRegs({ rip: KERNEL_TEXT + 0x1000n })))).toMatchObject({ handled: false });
    g.ram[0x40_1000] = 0;
    expect(Buffer.compare(g.ram, before)).toBe(0); // (not toEqual: 16 MiB diffs exhaust the heap)
  });
});

describe('HostQuirks when active', () => {
  it('adds the cmdline parameters and clears CPUID.1:ECX.CX16 only', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    expect(splitCmdline(q.cmdline('console=ttyS0'))).toEqual(['console=ttyS0', ...PVM_CMDLINE_ADDITIONS]);
    const cpuid: CpuidEntry[] = [
      { function: 1, index: 0, flags: 0, eax: 1, ebx: 2, ecx: 0xffff_ffff, edx: 3 },
      { function: 7, index: 0, flags: 1, eax: 0, ebx: 0xffff_ffff, ecx: 0xffff_ffff, edx: 0 },
    ];
    const out = q.cpuid(cpuid);
    expect(findCpuid(out, 1)!.ecx).toBe((0xffff_ffff & ~(1 << 13)) >>> 0);
    expect(findCpuid(out, 7, 0)).toEqual(cpuid[1]);
    expect(cpuid[0].ecx).toBe(0xffff_ffff);
  });

  it('plants the syscall trap from IDT gate 14 and keeps it planted', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    let sregsReads = 0;
    const getSregs = () => (sregsReads++, g.sregs);
    expect(q.ensureSyscallTrap(getSregs)).toBe(true);
    expect(g.ram[g.handlerGpa]).toBe(INT3);
    expect(q.ensureSyscallTrap(getSregs)).toBe(true);
    expect(sregsReads).toBe(1); // once planted, no more sregs reads
    g.ram.set([0x0f, 0x1f, 0x00], g.handlerGpa); // kernel patched the slot
    expect(q.ensureSyscallTrap(getSregs)).toBe(true);
    expect(g.ram[g.handlerGpa]).toBe(INT3);
    expect(q.syscallTrap?.displaced.length).toBe(3);
  });

  it('probes the IDT only every IDT_PROBE_INTERVAL calls while not planted', () => {
    const g = guestKernel({ slot: [0x6a, 0x0e] });
    const q = new HostQuirks(g.mem, { detection: ON });
    let reads = 0;
    for (let i = 0; i < 2 * IDT_PROBE_INTERVAL + 1; i++) q.ensureSyscallTrap(() => (reads++, g.sregs));
    expect(reads).toBe(3);
    g.ram.set([0x90, 0x90, 0x90], g.handlerGpa); // the real handler is in place now
    for (let i = 0; i < IDT_PROBE_INTERVAL; i++) q.ensureSyscallTrap(() => g.sregs);
    expect(g.ram[g.handlerGpa]).toBe(INT3);
  });

  it('waits while the IDT is not usable yet', () => {
    const g = guestKernel({ slot: [0x6a, 0x0e] }); // early_idt_handler_array stub
    const q = new HostQuirks(g.mem, { detection: ON });
    expect(q.ensureSyscallTrap(() => g.sregs)).toBe(false);
    expect(q.ensureSyscallTrap(() => ({ ...g.sregs, idt: { base: 0n, limit: 0 } }), { recheckIdt: true })).toBe(false);
    expect(g.ram[g.handlerGpa]).toBe(0x6a);
  });

  it('follows the IDT to a new #PF handler, restoring the old site', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    const other = { gva: KERNEL_TEXT + 0x2000n, gpa: KERNEL_TEXT_GPA + 0x2000 };
    g.ram.set([0x0f, 0x1f, 0x00], other.gpa);
    expect(q.armSyscallTrapAt(other)).toMatchObject({ planted: true });
    expect(q.ensureSyscallTrap(() => g.sregs)).toBe(true);
    expect(q.syscallTrap?.site.gva).toBe(other.gva); // no recheck asked
    expect(q.ensureSyscallTrap(() => g.sregs, { recheckIdt: true })).toBe(true);
    expect(q.syscallTrap?.site.gva).toBe(PF_HANDLER);
    expect(g.ram[other.gpa]).toBe(0x0f);
    expect(g.ram[g.handlerGpa]).toBe(INT3);
  });

  it('handles a trap hit as a syscall entry or a page fault', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    q.ensureSyscallTrap(() => g.sregs);
    const sys = g.faultEntry({ rip: LSTAR, cs: 0x33n, rflags: 0x246n, rsp: 0x7ffc_0000n, ss: 0x2bn }, { r11: 0x246n, rcx: 0x401000n });
    const a = q.onEmulationFailure(failure(g, sys));
    expect(a).toMatchObject({ handled: true, quirk: 'syscall-entry', regs: { rip: LSTAR, rsp: 0x7ffc_0000n }, sregs: { cs: { selector: 0x10 } } });
    const pf = g.faultEntry({ rip: 0x40_0000n, cs: 0x33n, rflags: 0x246n, rsp: 0x7ffc_0000n, ss: 0x2bn });
    const b = q.onEmulationFailure(failure(g, pf));
    expect(b).toMatchObject({ handled: true, quirk: 'page-fault-trap', regs: { rip: PF_HANDLER + 1n } });
    expect(b.handled && b.sregs).toBeFalsy();
    expect(q.counts).toMatchObject({ 'syscall-entry': 1, 'page-fault-trap': 1 });
  });

  it('injects #BP for other int3s, reading the instruction from guest memory or KVM', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    g.ram[KERNEL_TEXT_GPA + 0x1000] = INT3;
    const rip = KERNEL_TEXT + 0x1000n;
    expect(q.onEmulationFailure(failure(g, zeroRegs({ rip })))).toMatchObject({ handled: true, quirk: 'int3', regs: { rip: rip + 1n }, inject: { vector: 3 } });
    // KVM-supplied bytes win over memory
    const viaKvm = q.onEmulationFailure(failure(g, zeroRegs({ rip: rip + 0x10n, rflags: 2n | RFLAGS.AC }), Uint8Array.of(0x0f, 0x01, 0xca)));
    expect(viaKvm).toMatchObject({ handled: true, quirk: 'clac', regs: { rip: rip + 0x13n, rflags: 2n } });
  });

  it('reports what it could not handle, and ignores other internal-error kinds', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    g.ram.set([0x0f, 0x01, 0xd0], KERNEL_TEXT_GPA + 0x3000); // xgetbv
    const r = q.onEmulationFailure(failure(g, zeroRegs({ rip: KERNEL_TEXT + 0x3000n })));
    expect(r).toEqual({ handled: false, reason: expect.stringMatching(/no fallback for instruction 0f 01 d0/) });
    expect(q.onEmulationFailure(failure(g, zeroRegs({ rip: 0x1234_0000n })))).toMatchObject({ handled: false, reason: 'instruction bytes not readable' });
    expect(q.onEmulationFailure({ ...failure(g, zeroRegs({ rip: KERNEL_TEXT + 0x3000n })), suberror: 3 })).toMatchObject({ handled: false });
  });

  it('treats a trap-address hit as an ordinary int3 once the trap byte is gone', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    q.ensureSyscallTrap(() => g.sregs);
    g.ram.set([0x0f, 0x01, 0xca], g.handlerGpa);
    const r = q.onEmulationFailure(failure(g, zeroRegs({ rip: PF_HANDLER })));
    expect(r).toMatchObject({ handled: true, quirk: 'clac' });
  });

  it('moves the trap when a hit shows the IDT now points elsewhere', () => {
    const g = guestKernel();
    const q = new HostQuirks(g.mem, { detection: ON });
    q.ensureSyscallTrap(() => g.sregs);
    const next = KERNEL_TEXT + 0x4000n;
    g.ram.set([0x90, 0x90, 0x90], KERNEL_TEXT_GPA + 0x4000);
    writeGate(g.ram, 14, next);
    const pf = g.faultEntry({ rip: 0n, cs: 0x10n, rflags: 0n, rsp: 0n, ss: 0n });
    expect(q.onEmulationFailure(failure(g, pf))).toMatchObject({ quirk: 'page-fault-trap' });
    expect(q.syscallTrap?.site.gva).toBe(next);
    expect(g.ram[KERNEL_TEXT_GPA + 0x4000]).toBe(INT3);
    expect(g.ram[g.handlerGpa]).toBe(0x90);
  });
});
