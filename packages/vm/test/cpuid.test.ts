import { describe, expect, it } from 'vitest';
import {
  KVM_CPUID_FLAG_SIGNIFCANT_INDEX as SIG,
  KVM_SIGNATURE,
  bitsFor,
  clearCpuidBit,
  cpuVendor,
  findCpuid,
  guestCpuid,
  hasMtrr,
  type CpuidEntry,
} from '../src/cpu/cpuid.js';

const e = (fn: number, index: number, flags: number, eax: number, ebx: number, ecx: number, edx: number): CpuidEntry => ({
  function: fn, index, flags, eax, ebx, ecx, edx,
});
const field = (v: number, lo: number, hi: number) => (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
const bit = (v: number, b: number) => (v >>> b) & 1;

/** A trimmed KVM_GET_SUPPORTED_CPUID of an Intel host. */
const INTEL: CpuidEntry[] = [
  e(0x0, 0, 0, 0x1f, 0x756e_6547, 0x6c65_746e, 0x4965_6e69), // GenuineIntel
  e(0x1, 0, 0, 0x0005_0657, 0x0020_0800 | (7 << 24), 0xf7fa_3223 | (1 << 15) | (1 << 27) | (1 << 5) | (1 << 3), 0x0f8b_fbff),
  e(0x4, 0, SIG, 0x1c00_4121, 0x01c0_003f, 0x3f, 0),
  e(0x4, 1, SIG, 0x1c00_4122, 0x01c0_003f, 0x3f, 0),
  e(0x4, 2, SIG, 0x1c00_4143, 0x03c0_003f, 0x3ff, 0),
  e(0x4, 3, SIG, 0x1c03_c163, 0x0280_003f, 0x9fff, 4),
  e(0x4, 4, SIG, 0, 0, 0, 0),
  e(0x6, 0, 0, 0x77, 0x2, 0x9, 0),
  e(0x7, 0, SIG, 0, 0xd19f_4fbb, 0x0040_0020 | (1 << 5), 0xbc00_0400 | (1 << 29)),
  e(0xa, 0, 0, 0x0704_3004, 0, 0, 0x603),
  e(0xb, 0, SIG, 1, 2, 0x100, 7),
  e(0xd, 0, SIG, 0x2e7, 0xa88, 0xa88, 0),
  e(0x1f, 0, SIG, 1, 2, 0x100, 7),
  e(0x4000_0000, 0, 0, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
  e(0x4000_0001, 0, 0, 0x0100_7afb, 0, 0, 1),
  e(0x8000_0000, 0, 0, 0x8000_0008, 0, 0, 0),
  e(0x8000_0001, 0, 0, 0, 0, 0x121, 0x2c10_0800),
  e(0x8000_0008, 0, 0, 0x3027, 0, 0, 0),
];

/** A trimmed KVM_GET_SUPPORTED_CPUID of an AMD host (no paravirt leaves, to check they get added). */
const AMD: CpuidEntry[] = [
  e(0x0, 0, 0, 0x10, 0x6874_7541, 0x444d_4163, 0x6974_6e65), // AuthenticAMD
  e(0x1, 0, 0, 0x00a0_0f11, 0x0000_0800, 0xf6d8_3203, 0x178b_fbff),
  e(0x7, 0, SIG, 0, 0x219c_97a9, 0x0040_068c, 1 << 29),
  e(0x8000_0001, 0, 0, 0x00a0_0f11, 0, 0x7583_f3ff, 0x2fd3_fbff),
  e(0x8000_0008, 0, 0, 0x3030, 0x0100_f205, 0x0000_7007, 0),
  e(0x8000_001d, 0, SIG, 0x0000_4121, 0x01c0_003f, 0x3f, 0),
  e(0x8000_001d, 1, SIG, 0x0000_4143, 0x01c0_003f, 0x3ff, 2),
  e(0x8000_001d, 2, SIG, 0x0001_c163, 0x03c0_003f, 0x7fff, 1),
  e(0x8000_001e, 0, 0, 0xe, 0x103, 0, 0),
];

describe('cpuVendor', () => {
  it('decodes leaf 0 EBX-EDX-ECX', () => {
    expect(cpuVendor(INTEL)).toBe('intel');
    expect(cpuVendor(AMD)).toBe('amd');
    expect(cpuVendor([])).toBe('unknown');
  });
});

describe('guestCpuid (Intel)', () => {
  it('passes the vendor and untouched leaves through and never mutates its input', () => {
    const before = JSON.stringify(INTEL);
    const out = guestCpuid(INTEL, { vcpuIndex: 0, vcpuCount: 1 });
    expect(JSON.stringify(INTEL)).toBe(before);
    expect(findCpuid(out, 0)).toEqual(INTEL[0]);
    expect(findCpuid(out, 0xd)).toEqual(INTEL[11]);
    expect(cpuVendor(out)).toBe('intel');
  });

  it('leaf 1: APIC ID, CLFLUSH, logical count, HTT, hypervisor, TSC-deadline and the mask-outs', () => {
    for (const [index, count, logical] of [[0, 1, 1], [2, 3, 4], [5, 8, 8]]) {
      const l1 = findCpuid(guestCpuid(INTEL, { vcpuIndex: index, vcpuCount: count }), 1)!;
      expect(field(l1.ebx, 24, 31)).toBe(index);
      expect(field(l1.ebx, 16, 23)).toBe(logical);
      expect(field(l1.ebx, 8, 15)).toBe(8);
      expect(bit(l1.edx, 28)).toBe(count > 1 ? 1 : 0);
      expect(bit(l1.ecx, 31)).toBe(1);
      expect(bit(l1.ecx, 24)).toBe(1);
      for (const b of [3, 5, 15, 27]) expect(bit(l1.ecx, b)).toBe(0);
      expect(l1.eax).toBe(0x0005_0657); // family/model/stepping untouched
      expect(bit(l1.ecx, 13)).toBe(1); // CX16 is only a host quirk, not policy
    }
    const noDeadline = findCpuid(guestCpuid(INTEL, { vcpuIndex: 0, vcpuCount: 1, tscDeadline: false }), 1)!;
    expect(bit(noDeadline.ecx, 24)).toBe(0);
  });

  it('leaf 4: private L1/L2, L3 shared by all vCPUs, N-1 cores per package; the terminator untouched', () => {
    const out = guestCpuid(INTEL, { vcpuIndex: 1, vcpuCount: 4 });
    const sub = (i: number) => findCpuid(out, 4, i)!;
    for (const i of [0, 1, 2]) expect(field(sub(i).eax, 14, 25)).toBe(0);
    expect(field(sub(3).eax, 14, 25)).toBe(3);
    for (const i of [0, 1, 2, 3]) {
      expect(field(sub(i).eax, 26, 31)).toBe(3);
      expect(field(sub(i).eax, 0, 13)).toBe(field(INTEL[2 + i].eax, 0, 13)); // type, level, flags kept
      expect(sub(i).ebx).toBe(INTEL[2 + i].ebx);
    }
    expect(sub(4).eax).toBe(0);
  });

  it('leaf 6 without turbo/EPB, leaf 7 WAITPKG off and FPU deprecation bits on, leaf 0xA zeroed', () => {
    const out = guestCpuid(INTEL, { vcpuIndex: 0, vcpuCount: 2 });
    const l6 = findCpuid(out, 6)!;
    expect(bit(l6.eax, 1)).toBe(0);
    expect(bit(l6.ecx, 3)).toBe(0);
    const l7 = findCpuid(out, 7, 0)!;
    expect(bit(l7.ecx, 5)).toBe(0);
    expect(bit(l7.ebx, 6)).toBe(1);
    expect(bit(l7.ebx, 13)).toBe(1);
    expect(bit(l7.edx, 29)).toBe(1); // ARCH_CAPABILITIES stays on Intel
    expect(findCpuid(out, 0xa)).toMatchObject({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
  });

  it('leaf 0xB and 0x1F: SMT level of 1 thread, core level of N, x2APIC ID in EDX', () => {
    const out = guestCpuid(INTEL, { vcpuIndex: 5, vcpuCount: 6 });
    for (const fn of [0xb, 0x1f]) {
      const subs = out.filter((x) => x.function === fn).sort((a, b) => a.index - b.index);
      expect(subs).toEqual([
        { function: fn, index: 0, flags: SIG, eax: 0, ebx: 1, ecx: 0x100, edx: 5 },
        { function: fn, index: 1, flags: SIG, eax: 3, ebx: 6, ecx: 0x201, edx: 5 },
      ]);
    }
  });

  it('0x40000000 carries the KVM signature; 0x40000001 keeps KVM features, drops hints', () => {
    const out = guestCpuid(INTEL, { vcpuIndex: 0, vcpuCount: 1 });
    const sig = findCpuid(out, 0x4000_0000)!;
    const bytes = new Uint8Array(new Uint32Array([sig.ebx, sig.ecx, sig.edx]).buffer);
    expect(String.fromCharCode(...bytes)).toBe('KVMKVMKVM\0\0\0');
    expect(sig.eax).toBe(0x4000_0001);
    expect(findCpuid(out, 0x4000_0001)).toMatchObject({ eax: 0x0100_7afb, edx: 0 });
  });

  it('rejects impossible vCPU numbers with a clear message', () => {
    expect(() => guestCpuid(INTEL, { vcpuIndex: 0, vcpuCount: 0 })).toThrow(/vcpuCount 0/);
    expect(() => guestCpuid(INTEL, { vcpuIndex: 2, vcpuCount: 2 })).toThrow(/vcpuIndex 2 must be .* 0-1/);
    expect(() => guestCpuid(INTEL, { vcpuIndex: 0, vcpuCount: 300 })).toThrow(RangeError);
    expect(() => guestCpuid([INTEL[0]], { vcpuIndex: 0, vcpuCount: 1 })).toThrow(/no leaf 0x1/);
  });
});

describe('guestCpuid (AMD)', () => {
  it('sets NC/ApicIdSize, CmpLegacy, cache sharing, extended APIC ID; clears ARCH_CAPABILITIES', () => {
    const out = guestCpuid(AMD, { vcpuIndex: 2, vcpuCount: 3 });
    const sizes = findCpuid(out, 0x8000_0008)!;
    expect(field(sizes.ecx, 0, 7)).toBe(2);
    expect(field(sizes.ecx, 12, 15)).toBe(2);
    expect(bit(findCpuid(out, 0x8000_0001)!.ecx, 1)).toBe(1);
    expect(field(findCpuid(out, 0x8000_001d, 0)!.eax, 14, 25)).toBe(0);
    expect(field(findCpuid(out, 0x8000_001d, 1)!.eax, 14, 25)).toBe(0);
    expect(field(findCpuid(out, 0x8000_001d, 2)!.eax, 14, 25)).toBe(2);
    expect(findCpuid(out, 0x8000_001e)).toMatchObject({ eax: 2, ebx: 2, ecx: 0 });
    expect(bit(findCpuid(out, 7, 0)!.edx, 29)).toBe(0);
    expect(field(findCpuid(out, 1)!.ebx, 24, 31)).toBe(2);
    // leaf 0xB absent on this host: not invented
    expect(out.some((x) => x.function === 0xb)).toBe(false);
  });

  it('adds the KVM paravirt leaves when KVM did not list them', () => {
    const out = guestCpuid(AMD, { vcpuIndex: 0, vcpuCount: 1 });
    expect(findCpuid(out, 0x4000_0000)).toMatchObject({ eax: 0x4000_0001, ...KVM_SIGNATURE });
    expect(findCpuid(out, 0x4000_0001)).toMatchObject({ eax: 0, edx: 0 });
    expect(bit(findCpuid(out, 0x8000_0001)!.ecx, 1)).toBe(0); // single core: no CmpLegacy
  });
});

describe('helpers', () => {
  it('bitsFor rounds up to a power of two', () => {
    expect([1, 2, 3, 4, 5, 8, 9].map(bitsFor)).toEqual([0, 1, 2, 2, 3, 3, 4]);
  });

  it('clearCpuidBit clears one bit in a copy', () => {
    const out = clearCpuidBit(INTEL, 1, 0, 'ecx', 13);
    expect(bit(findCpuid(out, 1)!.ecx, 13)).toBe(0);
    expect(bit(findCpuid(INTEL, 1)!.ecx, 13)).toBe(1);
    expect(findCpuid(out, 1)!.ecx | (1 << 13)).toBe(findCpuid(INTEL, 1)!.ecx | 0);
  });

  it('hasMtrr reads CPUID.1:EDX[12]', () => {
    expect(hasMtrr(INTEL)).toBe(true);
    expect(hasMtrr(clearCpuidBit(INTEL, 1, 0, 'edx', 12))).toBe(false);
  });
});
