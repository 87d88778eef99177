import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  EMULATION_FLAG_INSTRUCTION_BYTES,
  InternalErrorKind,
  buildInternalErrorReport,
  describeExit,
  emulationFailureBytes,
  formatInternalError,
  formatRegisters,
  type VmExit,
} from '../src/lifecycle.js';
import { KERNEL_TEXT, KERNEL_TEXT_GPA, guestKernel } from './helpers/guest-kernel.js';
import { zeroRegs } from './helpers/vcpu.js';

const KVM_H = '/usr/include/linux/kvm.h';

describe.skipIf(!existsSync(KVM_H))('constants against linux/kvm.h', () => {
  const header = existsSync(KVM_H) ? readFileSync(KVM_H, 'utf8') : '';
  const define = (name: string): bigint => {
    const m = new RegExp(`#define\\s+${name}\\s+(.+)`).exec(header);
    if (!m) throw new Error(`${name} not in ${KVM_H}`);
    const shift = /^\((\d+)ULL\s*<<\s*(\d+)\)/.exec(m[1].trim());
    return shift ? BigInt(shift[1]) << BigInt(shift[2]) : BigInt(m[1].trim().split(/\s/)[0]);
  };
  it('internal-error suberrors and the instruction-bytes flag', () => {
    expect(define('KVM_INTERNAL_ERROR_EMULATION')).toBe(BigInt(InternalErrorKind.EMULATION));
    expect(define('KVM_INTERNAL_ERROR_SIMUL_EX')).toBe(BigInt(InternalErrorKind.SIMUL_EX));
    expect(define('KVM_INTERNAL_ERROR_DELIVERY_EV')).toBe(BigInt(InternalErrorKind.DELIVERY_EV));
    expect(define('KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON')).toBe(BigInt(InternalErrorKind.UNEXPECTED_EXIT_REASON));
    expect(define('KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES')).toBe(EMULATION_FLAG_INSTRUCTION_BYTES);
  });
  it('emulation_failure: flags is the first u64 of data[], then insn_size and 15 insn_bytes', () => {
    const struct = /struct \{\s*__u32 suberror;\s*__u32 ndata;\s*__u64 flags;\s*union \{\s*struct \{\s*__u8\s+insn_size;\s*__u8\s+insn_bytes\[15\];/;
    expect(struct.test(header)).toBe(true);
  });
});

/** `internal.data` as KVM fills it for an emulation failure with instruction bytes. */
function emulationData(bytes: number[]): bigint[] {
  const raw = new Uint8Array(16);
  raw[0] = bytes.length;
  raw.set(bytes, 1);
  const dv = new DataView(raw.buffer);
  return [EMULATION_FLAG_INSTRUCTION_BYTES, dv.getBigUint64(0, true), dv.getBigUint64(8, true)];
}

describe('internal-error reports', () => {
  it('decodes the instruction bytes KVM supplies', () => {
    expect([...emulationFailureBytes(1, emulationData([0x0f, 0x01, 0xca]))!]).toEqual([0x0f, 0x01, 0xca]);
    expect(emulationFailureBytes(1, [0n, 0n, 0n])).toBeUndefined(); // flag not set
    expect(emulationFailureBytes(3, emulationData([0xcc]))).toBeUndefined();
    expect(emulationFailureBytes(1, [1n])).toBeUndefined();
    const bogus = emulationData([]);
    bogus[1] = 0xffn; // insn_size 255
    expect(emulationFailureBytes(1, bogus)!.length).toBe(15);
  });

  it('falls back to guest memory through the page tables when KVM gave no bytes', () => {
    const g = guestKernel();
    g.ram.set([0x0f, 0x01, 0xd0], KERNEL_TEXT_GPA + 0x500);
    const regs = zeroRegs({ rip: KERNEL_TEXT + 0x500n, rax: 0xdeadn });
    const report = buildInternalErrorReport({ suberror: 1, data: [0n], regs, sregs: g.sregs, mem: g.mem });
    expect(report.insnSource).toBe('guest-memory');
    expect([...report.insnBytes.subarray(0, 3)]).toEqual([0x0f, 0x01, 0xd0]);
    expect(report.insnAddress).toBe(KERNEL_TEXT + 0x500n);
    const viaKvm = buildInternalErrorReport({ suberror: 1, data: emulationData([0xcc]), regs, sregs: g.sregs, mem: g.mem });
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
    const report = buildInternalErrorReport({ suberror: 1, data: emulationData([0x0f, 0x01, 0xd0]), regs: zeroRegs({ rip: 0x1000n }), sregs: g.sregs, mem: g.mem });
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
