import { describe, expect, it } from 'vitest';
import { intEnv } from '../lib/env.mjs';
import { median, ratio, summarize } from '../lib/stats.mjs';

describe('median', () => {
  it('takes the middle of an odd count, whatever the order', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([42])).toBe(42);
  });
  it('averages the two middle values of an even count', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
  it('does not reorder its input', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
  it('rejects no samples and non-finite ones', () => {
    expect(() => median([])).toThrow(/no samples/);
    expect(() => median([1, Number.NaN])).toThrow(/not a finite number/);
    expect(() => median([1, Infinity])).toThrow(/not a finite number/);
  });
});

describe('summarize and ratio', () => {
  it('summarizes samples', () => {
    expect(summarize([3, 9, 6])).toEqual({ median: 6, min: 3, max: 9, n: 3, samples: [3, 9, 6] });
  });
  it('divides by a positive baseline only', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(3, 0)).toBeUndefined();
    expect(ratio(3, -1)).toBeUndefined();
  });
});

describe('intEnv', () => {
  it('uses the default when the variable is unset or empty', () => {
    expect(intEnv('X', 5, 1, 10, {})).toBe(5);
    expect(intEnv('X', 5, 1, 10, { X: '' })).toBe(5);
  });
  it('parses a whole number in range', () => {
    expect(intEnv('X', 5, 1, 10, { X: '7' })).toBe(7);
  });
  it('names the variable when the value is bad', () => {
    expect(() => intEnv('HYPE_BENCH_BOOTS', 5, 1, 10, { HYPE_BENCH_BOOTS: 'many' })).toThrow('HYPE_BENCH_BOOTS=many: must be a whole number from 1 to 10');
    expect(() => intEnv('X', 5, 1, 10, { X: '2.5' })).toThrow(/whole number/);
    expect(() => intEnv('X', 5, 1, 10, { X: '11' })).toThrow(/from 1 to 10/);
  });
});
