import { describe, expect, it } from 'vitest';
import { collectStartupGarbage } from '../src/startup-garbage.js';

describe('collectStartupGarbage', () => {
  it('runs a full collection that frees dead ArrayBuffers, and leaves no gc global behind', () => {
    let garbage: Uint8Array[] | undefined = Array.from({ length: 16 }, () => new Uint8Array(1 << 20).fill(1));
    const held = process.memoryUsage().arrayBuffers;
    expect(garbage.length).toBe(16);
    garbage = undefined;
    expect(collectStartupGarbage()).toBe(true);
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(held - 8 * (1 << 20));
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    expect(collectStartupGarbage()).toBe(true); // again: still available
  });
});
