// Struct codecs against hand-placed bytes at the offsets <linux/kvm.h> gives (checked in kvm-sys).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeCpuid2, decodeFpu, decodeMsrs, decodeRegs, decodeSregs, decodeVcpuEvents, encodeCpuid2, encodeEnableCap,
  encodeFpu, encodeMsrs, encodeRegs, encodeSregs, encodeVcpuEvents, type Regs, type Segment, type Sregs,
} from '../src/structs.js';

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const dv = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

const regNames = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const;

describe('kvm_regs', () => {
  it('puts each register at its offset', () => {
    const regs = Object.fromEntries(regNames.map((name, i) => [name, BigInt(i + 1) * 0x0101010101n])) as unknown as Regs;
    const bytes = encodeRegs(regs);
    expect(bytes.length).toBe(144);
    expect(dv(bytes).getBigUint64(128, true)).toBe(regs.rip);
    expect(dv(bytes).getBigUint64(136, true)).toBe(regs.rflags);
    expect(dv(bytes).getBigUint64(64, true)).toBe(regs.r8);
    expect(decodeRegs(bytes)).toEqual(regs);
  });

  it('round-trips any 64-bit values', () => {
    fc.assert(
      fc.property(fc.array(u64, { minLength: 18, maxLength: 18 }), (values) => {
        const regs = Object.fromEntries(regNames.map((name, i) => [name, values[i]])) as unknown as Regs;
        expect(decodeRegs(encodeRegs(regs))).toEqual(regs);
      }),
    );
  });
});

const segment = (selector: number): Segment => ({
  base: BigInt(selector) << 4n, limit: 0xffff, selector, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0,
  avl: 0, unusable: 0,
});

describe('kvm_sregs', () => {
  const sregs: Sregs = {
    cs: { ...segment(0x8), type: 11, l: 1 }, ds: segment(0x10), es: segment(0x10), fs: segment(0), gs: segment(0),
    ss: segment(0x10), tr: { ...segment(0x18), type: 11, s: 0 }, ldt: { ...segment(0), type: 2, s: 0, unusable: 1 },
    gdt: { base: 0x500n, limit: 0x1f }, idt: { base: 0x520n, limit: 0xfff },
    cr0: 0x80050033n, cr2: 0n, cr3: 0x9000n, cr4: 0x20n, cr8: 0n, efer: 0x500n, apicBase: 0xfee00900n,
    interruptBitmap: [0n, 1n << 33n, 0n, 0n],
  };

  it('encodes segments, tables and control registers at their offsets', () => {
    const bytes = encodeSregs(sregs);
    const v = dv(bytes);
    expect(bytes.length).toBe(312);
    expect(v.getUint16(0 + 12, true)).toBe(0x8); // cs.selector
    expect(bytes[0 + 14]).toBe(11); // cs.type
    expect(bytes[0 + 19]).toBe(1); // cs.l
    expect(v.getBigUint64(24, true)).toBe(0x100n); // ds.base
    expect(v.getBigUint64(192, true)).toBe(0x500n); // gdt.base
    expect(v.getUint16(200, true)).toBe(0x1f); // gdt.limit
    expect(v.getBigUint64(224, true)).toBe(0x80050033n); // cr0
    expect(v.getBigUint64(240, true)).toBe(0x9000n); // cr3
    expect(v.getBigUint64(264, true)).toBe(0x500n); // efer
    expect(v.getBigUint64(272, true)).toBe(0xfee00900n); // apic_base
    expect(v.getBigUint64(288, true)).toBe(1n << 33n); // interrupt_bitmap[1]
    expect(decodeSregs(bytes)).toEqual(sregs);
  });
});

describe('kvm_fpu', () => {
  it('round-trips and rejects wrongly sized register files', () => {
    const fpu = {
      fpr: new Uint8Array(128).map((_, i) => i), fcw: 0x37f, fsw: 0x1234, ftwx: 0xff, lastOpcode: 0x7ff,
      lastIp: 0x1122334455667788n, lastDp: 42n, xmm: new Uint8Array(256).map((_, i) => 255 - i), mxcsr: 0x1f80,
    };
    const bytes = encodeFpu(fpu);
    expect(bytes.length).toBe(416);
    expect(dv(bytes).getUint16(128, true)).toBe(0x37f);
    expect(dv(bytes).getUint32(408, true)).toBe(0x1f80);
    expect(bytes[152]).toBe(255);
    expect(decodeFpu(bytes)).toEqual(fpu);
    expect(() => encodeFpu({ ...fpu, xmm: new Uint8Array(16) })).toThrow(RangeError);
  });
});

describe('kvm_msrs and kvm_cpuid2', () => {
  it('encode counts and entries', () => {
    const entries = [{ index: 0xc0000080, data: 0x500n }, { index: 0x10, data: 2n ** 63n }];
    const bytes = encodeMsrs(entries);
    expect(bytes.length).toBe(8 + 2 * 16);
    expect(dv(bytes).getUint32(0, true)).toBe(2);
    expect(dv(bytes).getUint32(8 + 16, true)).toBe(0x10);
    expect(decodeMsrs(bytes, 2)).toEqual(entries);
  });

  it('cpuid2 has room for `capacity` entries and decodes what nent says', () => {
    const entry = { function: 1, index: 0, flags: 0, eax: 0x806ec, ebx: 0x800, ecx: 0xfffa3203, edx: 0x178bfbff };
    const bytes = encodeCpuid2([entry], 4);
    expect(bytes.length).toBe(8 + 4 * 40);
    expect(dv(bytes).getUint32(0, true)).toBe(4);
    expect(dv(bytes).getUint32(8 + 20, true)).toBe(0xfffa3203); // ecx
    dv(bytes).setUint32(0, 1, true); // as KVM_GET_CPUID2 would leave it
    expect(decodeCpuid2(bytes)).toEqual([entry]);
  });
});

describe('kvm_vcpu_events', () => {
  it('injects #BP the way the PVM int3 workaround needs', () => {
    const events = decodeVcpuEvents(new Uint8Array(64));
    events.exception.injected = 1;
    events.exception.nr = 3;
    const bytes = encodeVcpuEvents(events);
    expect(bytes[0]).toBe(1);
    expect(bytes[1]).toBe(3);
    expect(decodeVcpuEvents(bytes)).toEqual(events);
  });

  it('round-trips every field', () => {
    const bytes = new Uint8Array(64).map((_, i) => (i * 7 + 1) & 0xff);
    bytes.fill(0, 29, 55); // reserved
    bytes[15] = 0; // nmi.pad
    expect(encodeVcpuEvents(decodeVcpuEvents(bytes))).toEqual(bytes);
  });
});

describe('kvm_enable_cap', () => {
  it('encodes cap, flags and up to four args', () => {
    const bytes = encodeEnableCap(204, [1, 2n ** 40n], 0);
    expect(bytes.length).toBe(104);
    expect(dv(bytes).getUint32(0, true)).toBe(204);
    expect(dv(bytes).getBigUint64(8, true)).toBe(1n);
    expect(dv(bytes).getBigUint64(16, true)).toBe(2n ** 40n);
    expect(() => encodeEnableCap(1, [1, 2, 3, 4, 5], 0)).toThrow(RangeError);
  });
});
