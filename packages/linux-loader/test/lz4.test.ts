import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lz4LegacyDecompress } from '@hype/linux-loader';

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
const MAGIC = u32(0x184c2102);
/** A legacy frame around the given blocks. */
const frame = (...blocks: number[][]) => new Uint8Array([...MAGIC, ...blocks.flatMap((b) => [...u32(b.length), ...b])]);
const text = (b: Uint8Array) => String.fromCharCode(...b);

describe('lz4LegacyDecompress', () => {
  it('decodes a literal-only block', () => {
    expect(text(lz4LegacyDecompress(frame([0x50, ...ascii('hello')]), 5))).toBe('hello');
  });

  it('decodes overlapping matches as a repeating pattern', () => {
    // "ab", then a 10-byte match at offset 2, then the final literal "x".
    const block = [0x26, ...ascii('ab'), 2, 0, 0x10, ...ascii('x')];
    expect(text(lz4LegacyDecompress(frame(block), 13))).toBe('abababababab' + 'x');
  });

  it('decodes extended literal and match lengths', () => {
    const lits = Array.from({ length: 300 }, (_, i) => (i * 13) & 0xff);
    // 300 literals (15 + 255 + 30), then a 275-byte match at offset 300 (4 + 15 + 255 + 1), then 1 literal.
    const block = [0xff, 255, 30, ...lits, 0x2c, 0x01, 255, 1, 0x10, 0x42];
    const out = lz4LegacyDecompress(frame(block), 300 + 275 + 1);
    expect([...out.subarray(0, 300)]).toEqual(lits);
    expect([...out.subarray(300, 575)]).toEqual(lits.slice(0, 275));
    expect(out[575]).toBe(0x42);
  });

  it('decodes several independent blocks and skips a repeated magic', () => {
    const a = [0x30, ...ascii('abc')];
    const b = [0x30, ...ascii('def')];
    const bytes = new Uint8Array([...frame(a), ...MAGIC, ...u32(b.length), ...b]);
    expect(text(lz4LegacyDecompress(bytes, 6))).toBe('abcdef');
  });

  it('rejects malformed input without reading or writing out of range', () => {
    const cases: [Uint8Array, number, RegExp][] = [
      [new Uint8Array([1, 2, 3, 4]), 4, /no legacy frame magic/],
      [frame([0x15, ...ascii('a'), 0, 0, 0x00]), 10, /match offset 0/],
      [frame([0x15, ...ascii('a'), 5, 0, 0x00]), 10, /match offset 5 outside the block/],
      [frame([0xf0, 255]), 400, /truncated literal length/],
      [frame([0x50, ...ascii('hel')]), 5, /literal run past the end/],
      [frame([0x50, ...ascii('hello')]), 4, /output larger than expected/],
      [frame([0x50, ...ascii('hello')]), 6, /decoded 5 bytes, expected 6/],
      [new Uint8Array([...MAGIC, ...u32(100), 1, 2]), 5, /runs past the end/],
      [frame([0x1f, ...ascii('a'), 1, 0]), 100, /truncated match length/],
      [frame([0x14, ...ascii('a'), 1]), 100, /truncated match offset/],
      [frame([0x14, ...ascii('a'), 1, 0]), 100, /block ends without a final literal run/],
    ];
    for (const [bytes, size, re] of cases) expect(() => lz4LegacyDecompress(bytes, size), String(re)).toThrow(re);
  });
});

const lz4 = '/usr/bin/lz4';
if (!existsSync(lz4)) console.warn('[hype] no lz4 command: skipping the lz4 CLI round trip in lz4.test.ts');

describe.skipIf(!existsSync(lz4))('against the lz4 command (what the kernel build runs: lz4 -l -9)', () => {
  it('decodes its legacy frames, across the 8 MiB block boundary', () => {
    // Compressible but not trivial: 9 MiB of a slowly varying pattern with noise.
    const size = 9 * 1024 * 1024 + 123;
    const input = new Uint8Array(size);
    let x = 12345;
    for (let i = 0; i < size; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      input[i] = (i >> 10) % 7 === 0 ? x >>> 24 : (i >> 4) & 0xff;
    }
    const run = spawnSync(lz4, ['-l', '-9', '-c', '-'], { input, maxBuffer: 64 << 20 });
    expect(run.status).toBe(0);
    const out = lz4LegacyDecompress(new Uint8Array(run.stdout), size);
    expect(Buffer.from(out).equals(Buffer.from(input))).toBe(true);
  });
});
