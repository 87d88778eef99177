import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../src/index.js';

describe('MemoryBackend', () => {
  it('a size the runtime cannot allocate is a memory disk error, not a bare "Invalid typed array length"', () => {
    expect(() => new MemoryBackend(100 * 2 ** 40)).toThrow(/^memory disk: cannot hold 109951162777600 bytes in host memory \(.+\); use a smaller size or a disk image file$/);
  });
});
