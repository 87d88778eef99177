import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { unxzBounded } from '@hype/linux-loader/node';

const hasXz = ['/usr/bin/xz', '/bin/xz'].some((p) => existsSync(p));
if (!hasXz) console.warn('[hype] no xz command: skipping xz.test.ts');

describe.skipIf(!hasXz)('xz payloads through the xz command', () => {
  const data = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  const packed = execFileSync('xz', ['-c', '--check=crc32'], { input: data });

  it('unpacks to the claimed size', () => {
    expect(Buffer.from(unxzBounded(packed, data.length)).equals(Buffer.from(data))).toBe(true);
  });

  it('refuses a stream that holds more than its trailer claims, without unpacking all of it', () => {
    expect(() => unxzBounded(packed, 4096)).toThrow(/holds more than the 4096 bytes/);
  });

  it('names xz in the error for a corrupt stream', () => {
    const corrupt = packed.slice();
    corrupt[corrupt.length >> 1] ^= 0xff;
    expect(() => unxzBounded(corrupt, data.length)).toThrow(/xz -dc failed/);
  });
});
