import { describe, expect, it } from 'vitest';
import { LoaderError, MIN_PROTOCOL, hasHdrS, parseSetupHeader } from '@hype/linux-loader';
import { makeBzImage } from './fixtures.js';

const err = (f: () => unknown): LoaderError => {
  try {
    f();
  } catch (e) {
    if (e instanceof LoaderError) return e;
    throw e;
  }
  throw new Error('expected a LoaderError');
};

describe('parseSetupHeader', () => {
  it('decodes the fields of a valid header', () => {
    const image = makeBzImage({ setupSects: 4, initSize: 0x1234000, prefAddress: 0x1000000, kernelVersion: '6.1.0-hype (x@y) #1' });
    const h = parseSetupHeader(image, '/k/bzImage');
    expect(h.version).toBe(0x020f);
    expect(h.versionString).toBe('2.15');
    expect(h.setupSects).toBe(4);
    expect(h.protectedModeOffset).toBe(5 * 512);
    expect(h.protectedModeOffset + h.protectedModeSize).toBe(image.length);
    expect(h.headerEnd).toBe(0x26c);
    expect(h.initSize).toBe(0x1234000);
    expect(h.prefAddress).toBe(0x1000000);
    expect(h.kernelAlignment).toBe(0x200000);
    expect(h.relocatable).toBe(true);
    expect(h.cmdlineSize).toBe(2047);
    expect(h.initrdAddrMax).toBe(0x7fffffff);
    expect(h.payloadOffset).toBe(0x400);
    expect(h.kernelVersion).toBe('6.1.0-hype (x@y) #1');
    expect(hasHdrS(image)).toBe(true);
  });

  it('treats setup_sects 0 as 4', () => {
    const h = parseSetupHeader(makeBzImage({ setupSects: 0 }), 'k');
    expect(h.setupSects).toBe(4);
    expect(h.protectedModeOffset).toBe(0xa00);
  });

  it('rejects garbage, naming the file', () => {
    const garbage = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff);
    const e = err(() => parseSetupHeader(garbage, '/x/y'));
    expect(e.message).toBe('kernel /x/y: not a bzImage (no HdrS magic at 0x202)');
    expect(e.kind).toBe('format');
  });

  it('rejects a file too short for a header', () => {
    expect(err(() => parseSetupHeader(new Uint8Array(100), '/x/y')).message).toBe(
      'kernel /x/y: not a bzImage (file is only 100 bytes, too short for a setup header)',
    );
  });

  it('rejects a wrong boot flag', () => {
    const image = makeBzImage();
    image[0x1fe] = 0;
    expect(err(() => parseSetupHeader(image, 'k')).message).toMatch(/boot flag 0xaa00 at 0x1fe, expected 0xaa55/);
  });

  it('rejects old boot protocols', () => {
    expect(err(() => parseSetupHeader(makeBzImage({ version: 0x0203 }), '/x/y')).message).toBe(
      'kernel /x/y: boot protocol 2.03 too old, need >= 2.12 (a 64-bit Linux 3.8 or newer)',
    );
    expect(err(() => parseSetupHeader(makeBzImage({ version: 0x020b }), 'k')).kind).toBe('unsupported');
    expect(() => parseSetupHeader(makeBzImage({ version: MIN_PROTOCOL }), 'k')).not.toThrow();
  });

  it('rejects a zImage and a kernel without 64-bit entry', () => {
    expect(err(() => parseSetupHeader(makeBzImage({ loadflags: 0 }), 'k')).message).toMatch(/zImage/);
    expect(err(() => parseSetupHeader(makeBzImage({ xloadflags: 0x7e }), 'k')).message).toMatch(/XLF_KERNEL_64/);
  });

  it('rejects truncated files at every cut point', () => {
    const image = makeBzImage();
    for (const cut of [0x210, 0x26b, 0x600, 5 * 512, image.length - 1]) {
      const e = err(() => parseSetupHeader(image.subarray(0, cut), '/x/y'));
      expect(e.message, `cut at ${cut}`).toMatch(/^kernel \/x\/y: (truncated|not a bzImage)/);
    }
  });

  it('rejects corrupt header values', () => {
    const image = makeBzImage();
    const dv = new DataView(image.buffer);
    const withU32 = (at: number, v: number) => {
      const copy = image.slice();
      new DataView(copy.buffer).setUint32(at, v, true);
      return copy;
    };
    expect(err(() => parseSetupHeader(withU32(0x24c, dv.getUint32(0x24c, true) + 0x10000), 'k')).message).toMatch(/payload .* outside/);
    expect(err(() => parseSetupHeader(withU32(0x230, 0x300000), 'k')).message).toMatch(/kernel_alignment 0x300000/);
    expect(err(() => parseSetupHeader(withU32(0x260, 0), 'k')).message).toMatch(/init_size is 0/);
    expect(err(() => parseSetupHeader(withU32(0x1f4, 0), 'k')).message).toMatch(/syssize is 0/);
    const badJump = image.slice();
    badJump[0x201] = 0xff; // header would run past 0x290
    expect(err(() => parseSetupHeader(badJump, 'k')).message).toMatch(/corrupt setup header \(jump/);
  });
});
