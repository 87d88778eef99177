// cProgram (c-values.ts), the helper of the layout tests that compare constants with compiled C headers.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cCompiler, cProgram } from './c-values.js';

const hasCompiler = cCompiler() !== undefined;

describe('cProgram', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it.skipIf(!hasCompiler)('reads back integer expressions: sizeof, offsetof, macros, after the setup statements', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const p = cProgram({ check: 'a test check', includes: ['stdint.h'], setup: ['struct pair { char a; uint32_t b; };', 'int n = 6 * 7;'] });
    expect([p.canCompile, p.skipReason]).toEqual([true, undefined]);
    expect(warn).not.toHaveBeenCalled();
    expect(
      p.values({
        u32: 'sizeof(uint32_t)',
        'pair.b:offset': 'offsetof(struct pair, b)',
        'pair-size': 'sizeof(struct pair)',
        max: 'UINT32_MAX',
        n: 'n',
        zero: '0',
      }),
    ).toEqual({ u32: 4, 'pair.b:offset': 4, 'pair-size': 8, max: 0xffff_ffff, n: 42, zero: 0 });
    expect(p.values({})).toEqual({});
  });

  it.skipIf(!hasCompiler)('a header the compiler cannot find: skipped, with a warning naming the check and the header', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const p = cProgram({ check: 'the compiled nothing.h check', includes: ['stdint.h', 'linux/hype_no_such_header.h'] });
    expect(p.canCompile).toBe(false);
    expect(p.skipReason).toMatch(/finds no <linux\/hype_no_such_header\.h>/);
    expect(p.skipReason).not.toMatch(/stdint/);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/^\[hype\] skipping the compiled nothing\.h check: .*hype_no_such_header\.h/);
    expect(() => p.values({ a: '1' })).toThrow(/cannot compile the compiled nothing\.h check/);
  });

  it.skipIf(!hasCompiler)('refuses what it cannot print exactly, and reports what the compiler said', () => {
    const p = cProgram({ check: 'a test check', includes: [] });
    expect(() => p.values({ 'a b': '1' })).toThrow(/key "a b"/);
    expect(() => p.values({ 'a"': '1' })).toThrow(/key/);
    expect(() => p.values({ big: '(unsigned long long)-1' })).toThrow(/big = 18446744073709551615 is not a safe integer/);
    expect(() => p.values({ bad: 'sizeof(struct hype_undefined)' })).toThrow(/failed:[\s\S]*hype_undefined[\s\S]*--- values\.c ---/);
  });

  it('without a C compiler on PATH: skipped, with a warning', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const path = process.env.PATH;
    vi.resetModules();
    process.env.PATH = '/hype-nonexistent';
    try {
      const fresh = await import('./c-values.js');
      expect(fresh.cCompiler()).toBeUndefined();
      const p = fresh.cProgram({ check: 'the compiled virtio_x.h check', includes: ['linux/virtio_ids.h'] });
      expect([p.canCompile, p.skipReason]).toEqual([false, 'no C compiler (cc or gcc) on PATH']);
      expect(warn.mock.calls).toEqual([['[hype] skipping the compiled virtio_x.h check: no C compiler (cc or gcc) on PATH']]);
      expect(() => p.values({ a: '1' })).toThrow(/no C compiler/);
    } finally {
      process.env.PATH = path;
      vi.resetModules();
    }
  });
});
