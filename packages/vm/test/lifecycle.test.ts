import { describe, expect, it } from 'vitest';
import {
  buildInternalErrorReport,
  describeExit,
  formatInternalError,
  formatRegisters,
  type VmExit,
} from '../src/lifecycle.js';
import { KERNEL_TEXT, KERNEL_TEXT_GPA, guestKernel } from './helpers/guest-kernel.js';
import { zeroRegs } from './helpers/vcpu.js';

describe('internal-error reports', () => {
  it('falls back to guest memory through the page tables when KVM gave no bytes', () => {
    const g = guestKernel();
    g.ram.set([0x0f, 0x01, 0xd0], KERNEL_TEXT_GPA + 0x500);
    const regs = zeroRegs({ rip: KERNEL_TEXT + 0x500n, rax: 0xdeadn });
    const report = buildInternalErrorReport({ suberror: 1, data: [0n], regs, sregs: g.sregs, mem: g.mem });
    expect(report.insnSource).toBe('guest-memory');
    expect([...report.insnBytes.subarray(0, 3)]).toEqual([0x0f, 0x01, 0xd0]);
    expect(report.insnAddress).toBe(KERNEL_TEXT + 0x500n);
    const viaKvm = buildInternalErrorReport({ suberror: 1, data: [1n, 0n, 0n], instructionBytes: Uint8Array.of(0xcc), regs, sregs: g.sregs, mem: g.mem });
    expect(viaKvm).toMatchObject({ insnSource: 'kvm', insnBytes: Uint8Array.of(0xcc) });

    const text = formatInternalError(0, report);
    expect(text).toMatch(/^vCPU 0: KVM internal error: instruction emulation failed/);
    expect(text).toContain('instruction at ffffffff81000500: 0f 01 d0');
    expect(text).toContain('RAX=000000000000dead');
    expect(text).toContain('RIP=ffffffff81000500');
    expect(text).toMatch(/CS =0010 base=0{16} limit=ffffffff type=b dpl=0 p=1 s=1 l=1/);
    expect(text).toMatch(/CPL=0/);
    expect(text).toMatch(/EFER=00000d01/);
  });

  it('formats every register', () => {
    const g = guestKernel();
    const text = formatRegisters(zeroRegs({ r15: 0x15n }), g.sregs);
    for (const r of ['RAX', 'RBX', 'RCX', 'RDX', 'RSI', 'RDI', 'RBP', 'RSP', 'R8 ', 'R15', 'RIP', 'RFL', 'CR0', 'CR2', 'CR3', 'CR4', 'GDT', 'IDT', 'TR ', 'LDT']) {
      expect(text).toContain(r);
    }
    expect(text).toContain('R15=0000000000000015');
  });
});

describe('describeExit', () => {
  it('gives one line per kind', () => {
    const g = guestKernel();
    const report = buildInternalErrorReport({ suberror: 1, data: [1n, 0n, 0n], instructionBytes: Uint8Array.of(0x0f, 0x01, 0xd0), regs: zeroRegs({ rip: 0x1000n }), sregs: g.sregs, mem: g.mem });
    const exits: [VmExit, RegExp][] = [
      [{ kind: 'poweroff', status: 3 }, /powered off with status 3/],
      [{ kind: 'reboot', source: 'i8042' }, /reboot \(i8042 reset\)/],
      [{ kind: 'shutdown', vcpu: 1 }, /vCPU 1 shut down \(triple fault\)/],
      [{ kind: 'internal-error', vcpu: 0, report }, /vCPU 0: KVM internal error \(instruction emulation failed\) at 0{12}1000: 0f 01 d0/],
      [{ kind: 'stopped', reason: 'SIGINT' }, /stopped by the host \(SIGINT\)/],
    ];
    for (const [exit, re] of exits) {
      const line = describeExit(exit);
      expect(line).toMatch(re);
      expect(line).not.toContain('\n');
    }
  });
});
