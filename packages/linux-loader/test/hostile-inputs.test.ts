// Inputs that used to escape the loader as something other than a LoaderError (a RangeError from a
// DataView, a stack overflow) or made it allocate whatever a payload claimed: each must now be a one-line
// LoaderError, found without large allocations.
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type LinuxBootOptions,
  LoaderError,
  flatMemory,
  hasHdrS,
  loadLinux,
  lz4LegacyDecompress,
  parseElf,
  parseSetupHeader,
  unpackPayload,
} from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { makeBzImage, makeElf, smallVmlinux } from './fixtures.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function errorOf(f: () => unknown): LoaderError {
  try {
    f();
  } catch (e) {
    if (e instanceof LoaderError) return e;
    throw e;
  }
  throw new Error('expected a LoaderError');
}

/** Guest memory that is never written: a load that fails validation takes no views. */
const noWrites = { view: () => { throw new Error('the loader wrote to guest memory'); } };

const load = (kernel: Uint8Array, memBytes: number, extra: Partial<LinuxBootOptions> = {}) =>
  loadLinux(noWrites, { kernel, kernelName: '/k/bad', memBytes, decompressors: nodeDecompressors, ...extra });

/** How much `f` grew the process (RSS or ArrayBuffer memory, whichever grew more), in bytes. */
function growth(f: () => void): number {
  const before = process.memoryUsage();
  f();
  const after = process.memoryUsage();
  return Math.max(after.rss - before.rss, after.arrayBuffers - before.arrayBuffers);
}

const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
const setU32 = (bytes: Uint8Array, at: number, n: number) => bytes.set(u32le(n), at);

describe('a file with the HdrS magic but shorter than the setup header', () => {
  const hdrS = (length: number) => {
    const bytes = new Uint8Array(length);
    bytes.set([0x55, 0xaa], 0x1fe);
    bytes.set([0xeb, 0x6a], 0x200);
    setU32(bytes, 0x202, 0x53726448);
    return bytes;
  };

  for (const length of [0x206, 0x207]) {
    it(`${hex(length)} bytes: truncated, not a DataView RangeError`, () => {
      expect(hasHdrS(hdrS(length))).toBe(true);
      for (const f of [() => parseSetupHeader(hdrS(length), '/k/bad'), () => load(hdrS(length), 64 * MiB)]) {
        const e = errorOf(f);
        expect(e.kind).toBe('format');
        expect(e.message).toBe(`kernel /k/bad: truncated (${length} bytes, the setup header alone needs 620)`);
      }
    });
  }
});

describe('pref_address at or above 2^53', () => {
  for (const pref of [2n ** 53n, 2n ** 64n - 1n]) {
    it(`0x${pref.toString(16)}: a corrupt header, not a RangeError`, () => {
      const image = makeBzImage();
      new DataView(image.buffer).setBigUint64(0x258, pref, true);
      for (const f of [() => parseSetupHeader(image, '/k/bad'), () => load(image, 64 * MiB, { unpack: false })]) {
        const e = errorOf(f);
        expect(e.kind).toBe('format');
        expect(e.message).toBe(
          `kernel /k/bad: corrupt setup header (pref_address 0x${pref.toString(16)} is beyond the 52-bit physical address space)`,
        );
      }
    });
  }

  it('a pref_address no guest RAM can hold (above 3 GiB): one line, without a --mem that cannot work', () => {
    const e = errorOf(() => load(makeBzImage({ prefAddress: 2 ** 40 }), 64 * MiB, { unpack: false }));
    expect(e.kind).toBe('unsupported');
    expect(e.message).toMatch(/^kernel \/k\/bad needs memory up to 1048584 MiB, beyond the 3072 MiB .*$/);
    expect(e.neededMiB).toBeUndefined();
  });
});

describe('an ELF note of 200,000 bytes', () => {
  const note = (name: Uint8Array, type: number, desc: number[]) => {
    const pad = (n: number) => (4 - (n % 4)) % 4;
    return [...u32le(name.length), ...u32le(desc.length), ...u32le(type), ...name, ...new Array(pad(name.length)).fill(0), ...desc];
  };
  const text = new Uint8Array(0x1000).fill(0xf4);
  const elfWithNotes = (notes: number[]) =>
    makeElf({
      entry: 0x1000000n,
      segments: [
        { vaddr: 0xffffffff81000000n, paddr: 0x1000000, data: text },
        { vaddr: 0n, paddr: 0, data: new Uint8Array(notes), type: 4 },
      ],
    });
  const bigName = new Uint8Array(200_000).fill(0x41);

  it('is walked past without decoding it into a string (no stack overflow)', () => {
    const kernel = elfWithNotes(note(bigName, 18, u32le(0x1000100)));
    const setup = loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel, memBytes: 64 * MiB });
    expect(setup.kernel.pvhEntry).toBeUndefined();
  });

  it('does not hide a PVH note after it', () => {
    const xen = new Uint8Array([0x58, 0x65, 0x6e, 0]);
    const kernel = elfWithNotes([...note(bigName, 1, [1, 2, 3, 4]), ...note(xen, 18, u32le(0x1000100))]);
    const setup = loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel, memBytes: 64 * MiB });
    expect(setup.kernel.pvhEntry).toBe(0x1000100);
  });

  it('a note whose sizes run past its segment ends the walk', () => {
    const kernel = elfWithNotes([...u32le(0xffff_fff0), ...u32le(0xffff_ffff), ...u32le(18), 0x58, 0x65, 0x6e, 0]);
    expect(parseElf(kernel, 'k').segments).toHaveLength(2);
    const setup = loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel, memBytes: 64 * MiB });
    expect(setup.kernel.pvhEntry).toBeUndefined();
  });
});

describe('decompression bombs: capped by guest RAM, found without allocating the output', () => {
  /** 64 gzip members of 16 MiB of zeros each: 1 GiB in about 1 MiB; the trailer (ISIZE) of the last says 16 MiB. */
  let gzipBomb: Uint8Array;
  beforeAll(() => {
    const member = gzipSync(new Uint8Array(16 * MiB));
    gzipBomb = new Uint8Array(member.length * 64);
    for (let i = 0; i < 64; i++) gzipBomb.set(member, i * member.length);
  });

  it('a gzip payload whose size trailer claims 1 GiB, with 64 MiB of RAM: a memory error naming the kernel', () => {
    const payload = gzipBomb.slice();
    setU32(payload, payload.length - 4, GiB);
    let e!: LoaderError;
    expect(growth(() => (e = errorOf(() => load(makeBzImage({ payload }), 64 * MiB))))).toBeLessThan(64 * MiB);
    expect(e.kind).toBe('memory');
    expect(e.message).toBe(
      'kernel /k/bad: the gzip payload unpacks to 1024 MiB, more than the 64 MiB of guest RAM: use --mem 1056 or more, or a smaller kernel',
    );
    expect(e.neededMiB).toBe(1056);
  });

  it('a gzip payload holding more than its trailer says: stopped at the claimed size', () => {
    let e!: LoaderError;
    expect(growth(() => (e = errorOf(() => load(makeBzImage({ payload: gzipBomb }), 64 * MiB))))).toBeLessThan(64 * MiB);
    expect(e.kind).toBe('decompress');
    expect(e.message).toBe(
      'kernel /k/bad: gzip payload does not decompress: it holds more than the 16777216 bytes its size trailer says',
    );
  });

  it('an lz4 payload whose trailer claims 4 GiB: rejected before anything is allocated', () => {
    const stream = [...u32le(0x184c2102), ...u32le(6), 0x50, 0x68, 0x65, 0x6c, 0x6c, 0x6f];
    const payload = new Uint8Array([...stream, ...u32le(0xffff_ffff)]);
    let e!: LoaderError;
    expect(growth(() => (e = errorOf(() => load(makeBzImage({ payload }), 64 * MiB))))).toBeLessThan(64 * MiB);
    expect(e.kind).toBe('memory');
    expect(e.message).toBe(
      'kernel /k/bad: the lz4 payload unpacks to 4096.0 MiB, more than the 64 MiB of guest RAM: ' +
        'it cannot fit below the PCI hole at 3072 MiB, use a smaller kernel',
    );
    expect(e.neededMiB).toBeUndefined();
  });

  it('lz4 on its own refuses a size its input cannot expand to, before allocating it', () => {
    const src = new Uint8Array([...u32le(0x184c2102), ...u32le(6), 0x50, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
    expect(growth(() => expect(() => lz4LegacyDecompress(src, 0xffff_ffff)).toThrow(/cannot expand/))).toBeLessThan(64 * MiB);
  });

  it('unpackPayload applies the cap it is given', () => {
    const payload = new Uint8Array(gzipSync(smallVmlinux()));
    expect(unpackPayload(payload, nodeDecompressors, 'kernel k', 1 * MiB).ok).toBe(true);
    const e = errorOf(() => unpackPayload(payload, nodeDecompressors, 'kernel k', 0x1000));
    expect(e.kind).toBe('memory');
  });

  it('a decompressor that throws something other than an Error is still a LoaderError', () => {
    const payload = new Uint8Array(gzipSync(smallVmlinux()));
    const e = errorOf(() => unpackPayload(payload, { gzip: () => { throw undefined; } }, 'kernel k'));
    expect(e.message).toBe('kernel k: gzip payload does not decompress: undefined');
  });
});

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
