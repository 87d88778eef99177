// Property tests: truncated, bit-flipped, field-mutated and random kernels (bzImage with gzip, lz4 and
// uncompressed payloads; ELF vmlinux) and odd load options. Whatever the input, the loader either loads
// it or throws a one-line LoaderError: never a RangeError, TypeError or stack overflow.
//
// `pnpm test` runs a few hundred cases per property. For the long run:
//   cd /work/main && HYPE_FUZZ_RUNS=100000 pnpm vitest run packages/linux-loader/test/fuzz.test.ts
// HYPE_FUZZ_SEED=<n> replays a reported failure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Decompressors,
  type LinuxBootOptions,
  LoaderError,
  bootparam,
  findSymbol,
  flatMemory,
  hasElfMagic,
  hasHdrS,
  loadLinux,
  lz4LegacyDecompress,
  parseElf,
  parseSetupHeader,
  unpackPayload,
} from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { gzipPayload, makeBzImage, makeElf, smallVmlinux } from './fixtures.js';

const RUNS = Number(process.env.HYPE_FUZZ_RUNS ?? 200);
const SEED = process.env.HYPE_FUZZ_SEED === undefined ? undefined : Number(process.env.HYPE_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const timeout = Math.max(30_000, RUNS * 20);

const MiB = 2 ** 20;
const MEM_BYTES = 32 * MiB;
/** One guest RAM for every run (allocating it per run would dominate the time). */
const ram = new Uint8Array(MEM_BYTES);
const mem = flatMemory(ram);
const decompressors: Decompressors = nodeDecompressors;

/** Runs `f`; anything it throws must be a LoaderError with a one-line message. */
function onlyLoaderErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof LoaderError)) throw e;
    expect(e.message).not.toContain('\n');
    expect(e.message.length).toBeGreaterThan(0);
  }
}

/** Every entry point that reads a kernel image. */
function exercise(kernel: Uint8Array, options: Partial<LinuxBootOptions> = {}): void {
  hasHdrS(kernel);
  hasElfMagic(kernel);
  onlyLoaderErrors(() => parseSetupHeader(kernel, 'fuzz'));
  onlyLoaderErrors(() => parseElf(kernel, 'fuzz'));
  onlyLoaderErrors(() => findSymbol(kernel, 'startup_64'));
  for (const unpack of [true, false]) {
    onlyLoaderErrors(() => loadLinux(mem, { kernel, kernelName: 'fuzz', memBytes: MEM_BYTES, decompressors, unpack, ...options }));
  }
}

/** An LZ4 legacy frame of literal-only blocks: what `lz4 -l` would produce for incompressible data. */
function lz4Literals(data: Uint8Array): Uint8Array {
  const parts: number[] = [0x02, 0x21, 0x4c, 0x18];
  const block: number[] = [0xf0];
  let n = data.length - 15;
  for (; n >= 255; n -= 255) block.push(255);
  block.push(n);
  const size = block.length + data.length;
  parts.push(size & 0xff, (size >>> 8) & 0xff, (size >>> 16) & 0xff, size >>> 24, ...block);
  const out = new Uint8Array(parts.length + data.length + 4);
  out.set(parts);
  out.set(data, parts.length);
  new DataView(out.buffer).setUint32(out.length - 4, data.length, true);
  return out;
}

const vmlinux = smallVmlinux();
const seeds = {
  vmlinux,
  gzipBzImage: makeBzImage({ kernelVersion: '6.1.0-fuzz' }),
  lz4BzImage: makeBzImage({ payload: lz4Literals(vmlinux) }),
  elfBzImage: makeBzImage({ payload: vmlinux }),
};

describe('the seed images load', () => {
  it.each(Object.entries(seeds))('%s', (_, kernel) => {
    expect(() => loadLinux(mem, { kernel, memBytes: MEM_BYTES, decompressors })).not.toThrow();
  });
});

describe('truncated images', () => {
  const cuts = (image: Uint8Array, interesting: number[]) => {
    const all = new Set<number>(interesting.filter((n) => n <= image.length));
    for (let n = 0; n <= 0x300 && n <= image.length; n++) all.add(n);
    for (let n = 0x300; n < image.length; n += 61) all.add(n);
    for (let n = Math.max(0, image.length - 64); n <= image.length; n++) all.add(n);
    return [...all];
  };

  it('a bzImage cut anywhere, especially around the setup header', () => {
    for (const image of [seeds.gzipBzImage, seeds.lz4BzImage, seeds.elfBzImage]) {
      const interesting = [0x1f1, 0x1fe, 0x200, 0x202, 0x205, 0x206, 0x207, 0x208, 0x211, 0x230, 0x236, 0x248, 0x258, 0x260, 0x268, 0x26b, 0x26c, 0x290, 0x400, 0xa00];
      for (const n of cuts(image, interesting)) exercise(image.subarray(0, n));
    }
  });

  it('an ELF vmlinux cut anywhere, especially around its headers', () => {
    const interesting = [4, 5, 16, 24, 32, 56, 57, 58, 63, 64, 64 + 56 - 1, 64 + 56, 64 + 2 * 56, 64 + 3 * 56 - 1, 64 + 3 * 56];
    for (const n of cuts(vmlinux, interesting)) exercise(vmlinux.subarray(0, n));
  });
});

/** Offsets biased towards the headers, where the parsing happens. */
const offsetIn = (length: number, hot: [number, number][]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...hot).chain(([lo, hi]) => fc.integer({ min: lo, max: Math.min(hi, length) - 1 })) },
    { weight: 1, arbitrary: fc.nat(length - 1) },
  );
const flipsArb = (length: number, hot: [number, number][]) =>
  fc.array(fc.record({ at: offsetIn(length, hot), bit: fc.nat(7) }), { minLength: 1, maxLength: 8 });
const flipped = (image: Uint8Array, flips: { at: number; bit: number }[]) => {
  const copy = image.slice();
  for (const { at, bit } of flips) copy[at] ^= 1 << bit;
  return copy;
};

/** Where a bzImage's payload (with its size trailer) lies. */
const payloadRange = (image: Uint8Array): [number, number] => {
  const h = parseSetupHeader(image, 'seed');
  const start = h.protectedModeOffset + h.payloadOffset;
  return [start, start + h.payloadLength];
};
const bzHot = (image: Uint8Array): [number, number][] => {
  const [start, end] = payloadRange(image);
  return [[0x1f1, 0x290], [start, start + 0x100], [end - 8, end]];
};
const elfHot: [number, number][] = [[0, 64 + 4 * 56]];

describe('property: bit-flipped images', () => {
  it(
    'a bzImage (gzip, lz4 or uncompressed payload) with bits flipped in its header or payload',
    () => {
      for (const image of [seeds.gzipBzImage, seeds.lz4BzImage, seeds.elfBzImage]) {
        fc.assert(fc.property(flipsArb(image.length, bzHot(image)), (flips) => exercise(flipped(image, flips))), params);
      }
    },
    timeout,
  );

  it(
    'an ELF vmlinux with bits flipped in its headers',
    () => {
      fc.assert(fc.property(flipsArb(vmlinux.length, elfHot), (flips) => exercise(flipped(vmlinux, flips))), params);
    },
    timeout,
  );
});

const u64Max = 2n ** 64n - 1n;
/** Values chosen to hit the edges: zero, one, sign bits, 2^32, 2^53, all ones, and anything. */
const valueArb = (size: number) => {
  const max = 2n ** BigInt(8 * size) - 1n;
  const edges = [0n, 1n, 2n, 0x10n, 0x200n, 0x1000n, 0x100000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 2n ** 32n, 2n ** 52n, 2n ** 53n, 2n ** 63n, u64Max]
    .filter((v) => v <= max);
  return fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...edges, max, max - 1n) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max }) },
  );
};
const setUint = (bytes: Uint8Array, at: number, size: number, value: bigint) => {
  for (let i = 0; i < size && at + i < bytes.length; i++) bytes[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
};
const mutationArb = (fields: { offset: number; size: number }[]) =>
  fc.array(
    fc.constantFrom(...fields).chain((field) => valueArb(field.size).map((value) => ({ ...field, value }))),
    { minLength: 1, maxLength: 4 },
  );
const mutated = (image: Uint8Array, mutations: { offset: number; size: number; value: bigint }[]) => {
  const copy = image.slice();
  for (const m of mutations) setUint(copy, m.offset, m.size, m.value);
  return copy;
};

const setupFields = Object.values(bootparam.SETUP_HEADER);
/** ELF header and program header fields (of the first three program headers). */
const elfFields = [
  { offset: 4, size: 1 },
  { offset: 5, size: 1 },
  { offset: 16, size: 2 },
  { offset: 18, size: 2 },
  { offset: 24, size: 8 },
  { offset: 32, size: 8 },
  { offset: 40, size: 8 },
  { offset: 54, size: 2 },
  { offset: 56, size: 2 },
  { offset: 58, size: 2 },
  { offset: 60, size: 2 },
  { offset: 62, size: 2 },
  ...[0, 1, 2].flatMap((i) =>
    [
      { offset: 0, size: 4 },
      { offset: 8, size: 8 },
      { offset: 16, size: 8 },
      { offset: 24, size: 8 },
      { offset: 32, size: 8 },
      { offset: 40, size: 8 },
      { offset: 48, size: 8 },
    ].map((f) => ({ offset: 64 + i * 56 + f.offset, size: f.size })),
  ),
];

describe('property: field-mutated images', () => {
  it(
    'a bzImage with setup header fields (and the payload size trailer) set to edge values',
    () => {
      for (const image of [seeds.gzipBzImage, seeds.lz4BzImage, seeds.elfBzImage]) {
        const trailer = { offset: payloadRange(image)[1] - 4, size: 4 };
        fc.assert(fc.property(mutationArb([...setupFields, trailer]), (m) => exercise(mutated(image, m))), params);
      }
    },
    timeout,
  );

  it(
    'an ELF vmlinux with header and program header fields set to edge values',
    () => {
      fc.assert(fc.property(mutationArb(elfFields), (m) => exercise(mutated(vmlinux, m))), params);
    },
    timeout,
  );
});

describe('property: random bytes', () => {
  it(
    'anything at all, and random bytes behind each magic number',
    () => {
      const prefixes: [number, number[]][] = [
        [0, []],
        [0, [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]],
        [0x1fe, [0x55, 0xaa, 0xeb, 0x6a, 0x48, 0x64, 0x72, 0x53, 0x0f, 0x02]],
      ];
      fc.assert(
        fc.property(fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 4096 }), ([at, prefix], random) => {
          const bytes = new Uint8Array(Math.max(random.length, at + prefix.length));
          bytes.set(random);
          bytes.set(prefix, at);
          exercise(bytes);
        }),
        params,
      );
    },
    timeout,
  );

  it(
    'a valid setup header in front of random payload bytes',
    () => {
      const magics = [[0x1f, 0x8b, 8, 0], [0x02, 0x21, 0x4c, 0x18], [0x7f, 0x45, 0x4c, 0x46], [0x28, 0xb5, 0x2f, 0xfd], []];
      fc.assert(
        fc.property(fc.constantFrom(...magics), fc.uint8Array({ maxLength: 2048 }), (magic, random) => {
          const payload = new Uint8Array([...magic, ...random]);
          if (payload.length === 0) return;
          exercise(makeBzImage({ payload }));
          onlyLoaderErrors(() => unpackPayload(payload, decompressors, 'kernel fuzz', MEM_BYTES));
        }),
        params,
      );
    },
    timeout,
  );
});

describe('property: ELF notes', () => {
  const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
  const lie = fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat(0xffffffff) });
  const noteArb = fc.record({
    // Mostly small names; sometimes one far larger than any string a function call can take as arguments.
    nameLength: fc.oneof({ weight: 4, arbitrary: fc.nat(8) }, { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 300_000 }) }),
    xen: fc.boolean(),
    type: fc.constantFrom(1, 18, 0xffffffff),
    desc: fc.uint8Array({ maxLength: 12 }),
    /** Sizes written in the header as given, or replaced by a lie. */
    namesz: lie,
    descsz: lie,
  });

  it(
    'a PT_NOTE segment of any notes, of any size, is walked without a throw',
    () => {
      const text = new Uint8Array(0x1000).fill(0xf4);
      fc.assert(
        fc.property(fc.array(noteArb, { maxLength: 4 }), fc.constantFrom(4, 8), (notes, align) => {
          const bytes: number[] = [];
          for (const n of notes) {
            const name = n.xen && n.nameLength === 4 ? [0x58, 0x65, 0x6e, 0] : new Array<number>(n.nameLength).fill(0x41);
            const pad = (len: number) => new Array<number>((align - (len % align)) % align).fill(0);
            bytes.push(...u32le(n.namesz ?? name.length), ...u32le(n.descsz ?? n.desc.length), ...u32le(n.type));
            for (const b of name) bytes.push(b);
            bytes.push(...pad(name.length), ...n.desc, ...pad(n.desc.length));
          }
          const kernel = makeElf({
            entry: 0x1000000n,
            segments: [
              { vaddr: 0xffffffff81000000n, paddr: 0x1000000, data: text },
              { vaddr: 0n, paddr: 0, data: new Uint8Array(bytes), type: 4 },
            ],
          });
          // p_align of the note segment (the second program header) decides the padding.
          new DataView(kernel.buffer).setBigUint64(64 + 56 + 48, BigInt(align), true);
          exercise(kernel);
        }),
        params,
      );
    },
    timeout,
  );
});

describe('property: lz4 decoder on hostile frames', () => {
  it(
    'throws only its own one-line errors, whatever the frame and claimed size',
    () => {
      const valid = lz4Literals(vmlinux).subarray(0, -4);
      fc.assert(
        fc.property(flipsArb(valid.length, [[0, 64]]), valueArb(4), (flips, claimed) => {
          try {
            lz4LegacyDecompress(flipped(valid, flips), Number(claimed));
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
            expect((e as Error).constructor).toBe(Error);
            expect((e as Error).message).toMatch(/^lz4: /);
          }
        }),
        params,
      );
    },
    timeout,
  );
});

describe('property: load options', () => {
  it(
    'any memory size, vCPU count and command line',
    () => {
      const memArb = fc.oneof(
        fc.constantFrom(0, -4096, 4096, MiB - 4096, MiB, MEM_BYTES, MEM_BYTES + 4096, 2 ** 32, 2 ** 53, NaN, Infinity, 1.5),
        fc.nat(MEM_BYTES / 4096).map((pages) => pages * 4096),
      );
      const cpusArb = fc.oneof(fc.constantFrom(-1, 0, 1, 254, 255, 1.5, NaN), fc.integer());
      fc.assert(
        fc.property(fc.constantFrom(...Object.values(seeds)), memArb, cpusArb, fc.string({ unit: 'binary', maxLength: 3000 }), (kernel, memBytes, cpus, cmdline) => {
          onlyLoaderErrors(() => loadLinux(mem, { kernel, memBytes, cpus, cmdline, decompressors }));
        }),
        params,
      );
    },
    timeout,
  );
});

// The gzip seed must really be gzip, or the decompression path would go untested.
describe('seeds', () => {
  it('cover the gzip, lz4 and uncompressed payload paths', () => {
    const formats = [seeds.gzipBzImage, seeds.lz4BzImage, seeds.elfBzImage].map(
      (image) => loadLinux(mem, { kernel: image, memBytes: MEM_BYTES, decompressors }).kernel.payloadFormat,
    );
    expect(formats).toEqual(['gzip', 'lz4', 'elf']);
    expect(gzipPayload(vmlinux)[0]).toBe(0x1f);
  });
});
