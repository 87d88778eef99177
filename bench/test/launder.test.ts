import { describe, expect, it } from 'vitest';
import { launderFreedMemory, launderMib } from '../lib/launder.mjs';

describe('launder (memory written before each timed run)', () => {
  it('takes HYPE_BENCH_LAUNDER_MIB, 384 by default, and refuses what is not a size', () => {
    expect(launderMib({})).toBe(384);
    expect(launderMib({ HYPE_BENCH_LAUNDER_MIB: '0' })).toBe(0);
    expect(launderMib({ HYPE_BENCH_LAUNDER_MIB: '64' })).toBe(64);
    expect(() => launderMib({ HYPE_BENCH_LAUNDER_MIB: '1G' })).toThrow(/HYPE_BENCH_LAUNDER_MIB=1G: must be a whole number/);
  });

  it('writes the memory with dd, and names dd and the way out when dd cannot run', () => {
    expect(() => launderFreedMemory(1)).not.toThrow();
    expect(() => launderFreedMemory(0, { PATH: '/nonexistent' })).not.toThrow(); // off: nothing runs
    expect(() => launderFreedMemory(1, { PATH: '/nonexistent' })).toThrow(/^dd \(writing 1 MiB before a timed run\): .*ENOENT.*HYPE_BENCH_LAUNDER_MIB=0/);
  });
});
