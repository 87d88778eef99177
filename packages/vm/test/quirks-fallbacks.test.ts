import { describe, expect, it } from 'vitest';
import { RFLAGS, type VcpuRegs } from '../src/cpu/state.js';
import { Vector, advanceRip, applyFallback, decodeFallback } from '../src/quirks/fallbacks.js';
import { kernelSregs, segment, userSregs, zeroRegs } from './helpers/vcpu.js';

const K = kernelSregs(0x1000n);
const RIP = 0xffff_ffff_8100_1000n;
const b = (...x: number[]) => Uint8Array.from(x);

describe('decodeFallback', () => {
  it('recognizes int3, fwait, clac, stac', () => {
    expect(decodeFallback(b(0xcc, 0x90), true)).toEqual({ kind: 'int3', length: 1 });
    expect(decodeFallback(b(0x9b), true)).toEqual({ kind: 'fwait', length: 1 });
    expect(decodeFallback(b(0x0f, 0x01, 0xca), true)).toEqual({ kind: 'clac', length: 3 });
    expect(decodeFallback(b(0x0f, 0x01, 0xcb), true)).toEqual({ kind: 'stac', length: 3 });
  });

  it('decodes reg-reg popcnt operand size and registers from prefixes, REX and ModRM', () => {
    expect(decodeFallback(b(0xf3, 0x48, 0x0f, 0xb8, 0xc1), true)).toEqual({ kind: 'popcnt', length: 5, operandBits: 64, dest: 0, src: 1 });
    expect(decodeFallback(b(0xf3, 0x0f, 0xb8, 0xd3), true)).toEqual({ kind: 'popcnt', length: 4, operandBits: 32, dest: 2, src: 3 });
    expect(decodeFallback(b(0x66, 0xf3, 0x0f, 0xb8, 0xc1), true)).toMatchObject({ operandBits: 16, length: 5 });
    expect(decodeFallback(b(0xf3, 0x66, 0x0f, 0xb8, 0xc1), true)).toMatchObject({ operandBits: 16, length: 5 });
    // REX.WRB: popcnt r9, r8
    expect(decodeFallback(b(0xf3, 0x4d, 0x0f, 0xb8, 0xc8), true)).toMatchObject({ operandBits: 64, dest: 9, src: 8 });
    // segment override is harmless on a register form
    expect(decodeFallback(b(0x2e, 0xf3, 0x0f, 0xb8, 0xc1), true)).toMatchObject({ length: 5 });
  });

  it('rejects what it cannot complete safely', () => {
    expect(decodeFallback(b(0xf3, 0x48, 0x0f, 0xb8, 0x01), true)).toBeUndefined(); // memory operand
    expect(decodeFallback(b(0xf0, 0xf3, 0x0f, 0xb8, 0xc1), true)).toBeUndefined(); // lock
    expect(decodeFallback(b(0x0f, 0xb8, 0xc1), true)).toBeUndefined(); // no F3: jmpe
    expect(decodeFallback(b(0xf2, 0xf3, 0x0f, 0xb8, 0xc1), true)).toBeUndefined();
    expect(decodeFallback(b(0xf3, 0x48, 0x0f, 0xb8, 0xc1), false)).toBeUndefined(); // 0x48 is dec eax outside long mode
    expect(decodeFallback(b(0x0f, 0x01, 0xd0), true)).toBeUndefined(); // xgetbv
    expect(decodeFallback(b(0xf3, 0x0f), true)).toBeUndefined(); // truncated
    expect(decodeFallback(new Uint8Array(15).fill(0x66), true)).toBeUndefined();
    expect(decodeFallback(new Uint8Array(0), true)).toBeUndefined();
  });
});

describe('applyFallback', () => {
  it('int3: RIP + 1 and #BP injected (trap semantics)', () => {
    const e = applyFallback({ kind: 'int3', length: 1 }, zeroRegs({ rip: RIP }), K);
    expect(e.regs.rip).toBe(RIP + 1n);
    expect(e.inject).toEqual({ vector: Vector.BP });
  });

  it('clac/stac flip RFLAGS.AC and advance 3 at CPL0; #UD at CPL3', () => {
    const regs = zeroRegs({ rip: RIP, rflags: 0x46n | RFLAGS.AC });
    const clac = applyFallback({ kind: 'clac', length: 3 }, regs, K);
    expect(clac.regs.rflags).toBe(0x46n);
    expect(clac.regs.rip).toBe(RIP + 3n);
    const stac = applyFallback({ kind: 'stac', length: 3 }, clac.regs, K);
    expect(stac.regs.rflags & RFLAGS.AC).toBe(RFLAGS.AC);
    expect(stac.regs.rip).toBe(RIP + 6n);
    const user = applyFallback({ kind: 'stac', length: 3 }, clac.regs, userSregs(0x1000n));
    expect(user.inject).toEqual({ vector: Vector.UD });
    expect(user.regs).toEqual(clac.regs);
  });

  it('fwait: RIP + 1, or #NM when CR0.TS and CR0.MP are set', () => {
    expect(applyFallback({ kind: 'fwait', length: 1 }, zeroRegs({ rip: RIP }), K).regs.rip).toBe(RIP + 1n);
    const nm = applyFallback({ kind: 'fwait', length: 1 }, zeroRegs({ rip: RIP }), { ...K, cr0: K.cr0 | 0xan });
    expect(nm.inject).toEqual({ vector: Vector.NM });
    expect(nm.regs.rip).toBe(RIP);
  });

  const popcnt = (bytes: Uint8Array, regs: VcpuRegs) => {
    const f = decodeFallback(bytes, true)!;
    return applyFallback(f, regs, K).regs;
  };

  it('popcnt 64: counts all 64 bits, sets ZF only for a zero source, clears the other flags', () => {
    const all = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.SF | RFLAGS.OF | RFLAGS.IF | 2n;
    const r = popcnt(b(0xf3, 0x48, 0x0f, 0xb8, 0xc1), zeroRegs({ rip: RIP, rcx: 0xffff_ffff_ffff_ffffn, rflags: all }));
    expect(r.rax).toBe(64n);
    expect(r.rip).toBe(RIP + 5n);
    expect(r.rflags).toBe(RFLAGS.IF | 2n);
    const z = popcnt(b(0xf3, 0x48, 0x0f, 0xb8, 0xc1), zeroRegs({ rip: RIP, rax: 99n, rflags: all }));
    expect(z.rax).toBe(0n);
    expect(z.rflags).toBe(RFLAGS.IF | RFLAGS.ZF | 2n);
  });

  it('popcnt 32 ignores the upper source half and zero-extends the result', () => {
    const r = popcnt(b(0xf3, 0x0f, 0xb8, 0xc1), zeroRegs({ rax: 0xdead_beef_0000_0000n, rcx: 0xffff_0000_0000_0101n }));
    expect(r.rax).toBe(2n);
    const zero = popcnt(b(0xf3, 0x0f, 0xb8, 0xc1), zeroRegs({ rcx: 0xffff_0000_0000_0000n }));
    expect(zero.rflags & RFLAGS.ZF).toBe(RFLAGS.ZF);
  });

  it('popcnt 16 keeps the destination bits above 15', () => {
    const r = popcnt(b(0x66, 0xf3, 0x0f, 0xb8, 0xc1), zeroRegs({ rax: 0x1234_5678_9abc_def0n, rcx: 0xffff_0000_0007n }));
    expect(r.rax).toBe(0x1234_5678_9abc_0003n);
  });

  it('popcnt with REX extensions reads r8 and writes r9; dest == src works', () => {
    const r = popcnt(b(0xf3, 0x4d, 0x0f, 0xb8, 0xc8), zeroRegs({ r8: 0x8000_0000_0000_0001n, r9: 5n }));
    expect(r.r9).toBe(2n);
    expect(r.r8).toBe(0x8000_0000_0000_0001n);
    const same = popcnt(b(0xf3, 0x48, 0x0f, 0xb8, 0xdb), zeroRegs({ rbx: 0xf0fn }));
    expect(same.rbx).toBe(8n);
  });

  it('popcnt agrees with a reference count on random values for every register pair', () => {
    let seed = 0x1234_5678n;
    const next = () => (seed = (seed * 6364136223846793005n + 1442695040888963407n) & 0xffff_ffff_ffff_ffffn);
    const names = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
    for (let i = 0; i < 300; i++) {
      const dest = Number(next() & 15n);
      const src = Number(next() & 15n);
      const rex = 0x48 | ((dest & 8) >> 1) | ((src & 8) >> 3);
      const regs = zeroRegs();
      for (const n of names) regs[n] = next();
      const v = regs[names[src]];
      const expected = BigInt([...v.toString(2)].filter((c) => c === '1').length);
      const out = popcnt(b(0xf3, rex, 0x0f, 0xb8, 0xc0 | ((dest & 7) << 3) | (src & 7)), regs);
      expect(out[names[dest]]).toBe(expected);
    }
  });
});

describe('advanceRip', () => {
  it('wraps to the code size', () => {
    expect(advanceRip({ rip: 0xffff_ffff_ffff_ffffn }, K, 1)).toBe(0n);
    const cs32 = { efer: 0n, cs: segment({ db: 1 }) };
    expect(advanceRip({ rip: 0xffff_ffffn }, cs32, 2)).toBe(1n);
    const cs16 = { efer: 0n, cs: segment({ db: 0 }) };
    expect(advanceRip({ rip: 0xffffn }, cs16, 1)).toBe(0n);
  });
});
