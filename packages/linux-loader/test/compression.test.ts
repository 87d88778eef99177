import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LoaderError, builtinDecompressors, detectPayloadFormat, unpackPayload } from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { smallVmlinux } from './fixtures.js';

const withSize = (stream: Uint8Array, size: number) => {
  const out = new Uint8Array(stream.length + 4);
  out.set(stream);
  new DataView(out.buffer).setUint32(stream.length, size, true);
  return out;
};

describe('detectPayloadFormat (boot.rst payload magic numbers)', () => {
  it('recognises every format the kernel build produces', () => {
    const cases: [number[], string][] = [
      [[0x1f, 0x8b], 'gzip'],
      [[0x1f, 0x9e], 'gzip'],
      [[0x42, 0x5a], 'bzip2'],
      [[0x5d, 0x00], 'lzma'],
      [[0xfd, 0x37], 'xz'],
      [[0x89, 0x4c, 0x5a, 0x4f], 'lzo'],
      [[0x02, 0x21], 'lz4'],
      [[0x28, 0xb5], 'zstd'],
      [[0x7f, 0x45, 0x4c, 0x46], 'elf'],
    ];
    for (const [magic, format] of cases) expect(detectPayloadFormat(new Uint8Array([...magic, 0, 0, 0, 0]))).toBe(format);
    expect(detectPayloadFormat(new Uint8Array([0, 1, 2, 3]))).toBeUndefined();
  });
});

describe('unpackPayload', () => {
  const elf = smallVmlinux();

  it('gunzips with the Node decompressor, checking the size against ISIZE', () => {
    const r = unpackPayload(new Uint8Array(gzipSync(elf)), nodeDecompressors, 'kernel k');
    expect(r.ok && Buffer.from(r.elf).equals(Buffer.from(elf))).toBe(true);
    expect(r.format).toBe('gzip');
  });

  it('strips the size the kernel build appends to the other formats', () => {
    const seen: { len: number; size: number }[] = [];
    const fake = (data: Uint8Array, size: number) => {
      seen.push({ len: data.length, size });
      return elf;
    };
    const zstdLike = withSize(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 9, 9, 9]), elf.length);
    const r = unpackPayload(zstdLike, { zstd: fake }, 'kernel k');
    expect(r.ok).toBe(true);
    expect(seen).toEqual([{ len: 7, size: elf.length }]);
  });

  it('falls back (no error) when there is no decompressor for the format', () => {
    const xz = withSize(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]), 1000);
    expect(unpackPayload(xz, builtinDecompressors, 'kernel k')).toEqual({ ok: false, format: 'xz', reason: 'no host decompressor for xz' });
    expect(unpackPayload(new Uint8Array([1, 2, 3, 4, 5]), {}, 'kernel k')).toEqual({
      ok: false,
      format: undefined,
      reason: 'payload format unknown (magic 01 02 03 04)',
    });
  });

  it('passes an uncompressed ELF payload through', () => {
    const r = unpackPayload(elf, {}, 'kernel k');
    expect(r.ok && r.elf === elf).toBe(true);
  });

  it('fails with a one-line error on a corrupt stream, a wrong size or non-ELF output', () => {
    const gz = new Uint8Array(gzipSync(elf));
    const corrupt = gz.slice();
    corrupt.fill(0x55, 20, 60);
    const errorOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as LoaderError;
      }
      throw new Error('no error');
    };
    const e1 = errorOf(() => unpackPayload(corrupt, nodeDecompressors, 'kernel /k'));
    expect(e1).toBeInstanceOf(LoaderError);
    expect(e1.kind).toBe('decompress');
    expect(e1.message).toMatch(/^kernel \/k: gzip payload does not decompress: /);
    expect(e1.message).not.toContain('\n');

    const short = withSize(new Uint8Array([0x28, 0xb5, 1, 2]), elf.length + 1);
    expect(() => unpackPayload(short, { zstd: () => elf }, 'kernel /k')).toThrow(
      `kernel /k: zstd payload decompressed to ${elf.length} bytes, the image says ${elf.length + 1}`,
    );
    const notElf = new Uint8Array(gzipSync(new Uint8Array(100)));
    expect(() => unpackPayload(notElf, nodeDecompressors, 'kernel /k')).toThrow('kernel /k: decompressed gzip payload is not an ELF vmlinux');
  });
});
