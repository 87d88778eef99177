import { describe, expect, it, vi } from 'vitest';
import { collectStartupGarbage } from '../src/startup-garbage.js';

describe('collectStartupGarbage', () => {
  it('runs a full collection that frees dead ArrayBuffers, and leaves no gc global behind', async () => {
    let garbage: Uint8Array[] | undefined = Array.from({ length: 16 }, () => new Uint8Array(1 << 20).fill(1));
    const first = new WeakRef(garbage[0]!.buffer);
    const held = process.memoryUsage().arrayBuffers;
    expect(garbage.length).toBe(16);
    garbage = undefined;
    // A WeakRef keeps its target alive until the job that made it ends.
    await new Promise((resolve) => setImmediate(resolve));
    expect(collectStartupGarbage()).toBe(true);
    expect(first.deref()).toBeUndefined(); // collected: a full collection ran
    // The memory itself goes back when V8's sweeper has finished, on another thread: not necessarily by
    // this line (a CI run under load saw it still held right after the collection).
    await vi.waitFor(() => expect(process.memoryUsage().arrayBuffers).toBeLessThan(held - 8 * (1 << 20)), { timeout: 10_000, interval: 10 });
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    expect(collectStartupGarbage()).toBe(true); // again: still available
  });
});
