import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { loaderCheckBoot } from '../src/boot-check.js';
import { bootProblem } from '../src/validate.js';
import { elfKernel, MiB } from './helpers.js';

const check = (overrides: Partial<Parameters<typeof loaderCheckBoot>[0]> = {}) =>
  bootProblem(loaderCheckBoot, { kernel: elfKernel(), kernelName: 'vmlinux', initrdBytes: 0, memMiB: 256, cpus: 1, ...overrides });

describe('loaderCheckBoot (the real @hype/linux-loader, dry run)', () => {
  it('accepts a vmlinux that fits, with and without an initrd, up to 8 vCPUs', () => {
    expect(check()).toBeUndefined();
    expect(check({ initrdBytes: 8 * MiB, initrdName: 'initrd.cpio', cpus: 8 })).toBeUndefined();
  });

  it('accepts more than 3 GiB (RAM above the PCI hole)', () => {
    expect(check({ memMiB: 5 * 1024 })).toBeUndefined();
  });

  it('rejects a file that is neither a bzImage nor an ELF', () => {
    expect(check({ kernel: new Uint8Array(4096).fill(0x90), kernelName: 'junk' })).toEqual({
      kind: 'format',
      message: 'kernel junk: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux',
    });
  });

  it('rejects a gzip file (a compressed vmlinux is not bootable as is)', () => {
    expect(check({ kernel: gzipSync(elfKernel()), kernelName: 'vmlinux.gz' })?.kind).toBe('format');
  });

  it('rejects a 32-bit ELF', () => {
    const kernel = elfKernel();
    kernel[4] = 1;
    expect(check({ kernel })).toEqual({ kind: 'unsupported', message: 'kernel vmlinux: a 32-bit ELF, need an x86-64 (ELF64) vmlinux' });
  });

  it('rejects too little memory for the kernel, saying how much to give', () => {
    expect(check({ memMiB: 16 })).toEqual({
      kind: 'memory',
      message: expect.stringMatching(/^memory 16 MiB too small for kernel \(up to 20 MiB\): use --mem \d+ or more$/),
    });
  });

  it('rejects too little memory for kernel + initrd', () => {
    const problem = check({ memMiB: 24, initrdBytes: 8 * MiB, initrdName: 'initrd.cpio' });
    expect(problem?.kind).toBe('memory');
    expect(problem?.message).toMatch(/^memory 24 MiB too small for kernel \(up to 20 MiB\) \+ initrd \(8 MiB\): use --mem \d+ or more$/);
  });

  it('rejects a command line longer than the kernel takes', () => {
    expect(check({ cmdline: 'x'.repeat(1 << 20) })?.kind).toBe('cmdline');
  });

  it('a bug (an error without a kind) is not turned into a verdict', () => {
    expect(() => bootProblem(() => { throw new TypeError('oops'); }, { kernel: elfKernel(), kernelName: 'k', initrdBytes: 0, memMiB: 256, cpus: 1 })).toThrow('oops');
  });
});
