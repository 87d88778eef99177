import { describe, expect, it } from 'vitest';
import { Msr, bootMsrs } from '../src/cpu/msrs.js';

describe('bootMsrs', () => {
  it('matches msr-index.h numbering', () => {
    expect(Msr).toMatchObject({
      IA32_SYSENTER_CS: 0x174, IA32_MISC_ENABLE: 0x1a0, MTRR_DEF_TYPE: 0x2ff,
      STAR: 0xc0000081, LSTAR: 0xc0000082, CSTAR: 0xc0000083, SYSCALL_MASK: 0xc0000084, KERNEL_GS_BASE: 0xc0000102,
    });
  });

  it("is Firecracker's boot list: syscall MSRs zeroed, TSC 0, fast strings on", () => {
    const m = new Map(bootMsrs().map((x) => [x.index, x.data]));
    expect([...m.keys()].sort()).toEqual(
      [0x174, 0x175, 0x176, 0xc0000081, 0xc0000083, 0xc0000102, 0xc0000084, 0xc0000082, 0x10, 0x1a0].sort(),
    );
    expect(m.get(Msr.IA32_MISC_ENABLE)).toBe(1n);
    expect(m.get(Msr.LSTAR)).toBe(0n);
  });

  it('adds MTRRdefType = enabled | write-back on request', () => {
    const m = new Map(bootMsrs({ mtrr: true }).map((x) => [x.index, x.data]));
    expect(m.get(Msr.MTRR_DEF_TYPE)).toBe(0x806n);
  });
});
