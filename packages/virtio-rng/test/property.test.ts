// Property: whatever chains the guest posts (direct or indirect, readable and writable buffers of any
// length, buffers outside RAM, more buffers than the queue allows), with or without a rate limit, the
// entropy device never throws, never sets DEVICE_NEEDS_RESET, writes guest RAM only in the used ring and
// in the first `len` bytes of the writable buffers of the chains it completed, completes every chain
// once, and hands out the source's bytes in order.
// HYPE_FUZZ_RUNS=<n> for a longer run, HYPE_FUZZ_SEED=<n> to replay.
import { Used } from '@hype/virtio';
import type { BufSpec } from '@hype/virtio/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_BYTES_PER_REQUEST } from '../src/index.js';
import { rig, sameBytes } from './helpers.js';

const RUNS = Number(process.env.HYPE_FUZZ_RUNS ?? 100);
const SEED = process.env.HYPE_FUZZ_SEED === undefined ? undefined : Number(process.env.HYPE_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const RAM = 2 << 20;
const FILL = 0xee;

const bufArb = fc.record({
  len: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 96 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 4096, 65535, 65536, 70000) }),
  writable: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  outside: fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});
const chainArb = fc.record({ indirect: fc.boolean(), bufs: fc.array(bufArb, { minLength: 1, maxLength: 3 }) });
const caseArb = fc.record({
  queueSize: fc.constantFrom(1, 2, 4, 8, 16),
  eventIdx: fc.boolean(),
  rateLimit: fc.option(fc.record({ bytesPerSecond: fc.integer({ min: 1, max: 200_000 }), burstBytes: fc.integer({ min: 1, max: 70_000 }) }), { nil: undefined }),
  batches: fc.array(fc.array(chainArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }),
});

/** Offsets (the first few) where `after` differs from `before` outside `allowed`; compared a word at a time. */
function strayWrites(before: Uint8Array, after: Uint8Array, allowed: Uint8Array): number[] {
  const words = before.length >>> 2;
  const b32 = new Uint32Array(before.buffer, before.byteOffset, words);
  const a32 = new Uint32Array(after.buffer, after.byteOffset, words);
  const out: number[] = [];
  for (let w = 0; w < words && out.length < 8; w++) {
    if (b32[w] === a32[w]) continue;
    for (let i = 4 * w; i < 4 * w + 4; i++) if (before[i] !== after[i] && allowed[i] === 0) out.push(i);
  }
  for (let i = 4 * words; i < before.length; i++) if (before[i] !== after[i] && allowed[i] === 0) out.push(i);
  return out;
}

describe('property: hostile chains against the entropy device', () => {
  it('never throws or resets, writes only the written prefix of writable buffers, serves the source in order', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { drv, device, source, time } = rig(
          { rateLimit: c.rateLimit },
          { ramSize: RAM, queueSize: c.queueSize, transport: { eventIdx: c.eventIdx } },
        );
        const q = drv.queue();
        let streamOffset = 0;
        for (const batch of c.batches) {
          drv.allocator.reset();
          drv.ram.fill(FILL, drv.allocator.start);
          type Posted = { head: number; bufs: BufSpec[]; valid: boolean; writableTotal: number };
          const posted: Posted[] = [];
          for (const chain of batch) {
            const bufs: BufSpec[] = chain.bufs.map((b) =>
              b.outside ? { addr: RAM + 4096, len: Math.max(1, b.len), writable: b.writable } : { addr: drv.alloc(b.len), len: b.len, writable: b.writable },
            );
            const direct = !chain.indirect;
            if (direct && bufs.length > q.freeDescriptors) continue;
            if (!direct && q.freeDescriptors === 0) continue;
            const head = direct ? drv.submit(bufs, { notify: false }) : drv.submitIndirect(bufs, { notify: false });
            const valid =
              !chain.bufs.some((b) => b.outside) &&
              !(chain.indirect && bufs.length > c.queueSize) &&
              // Readable after writable is a malformed chain; readable anywhere is refused all the same.
              bufs.every((b) => b.writable);
            posted.push({ head, bufs, valid, writableTotal: bufs.filter((b) => b.writable).reduce((n, b) => n + b.len, 0) });
          }
          const before = drv.ram.slice();
          drv.notify();
          for (let turn = 0; q.pendingUsed < posted.length; turn++) {
            expect(turn).toBeLessThan(10_000);
            if (time.deferred.length > 0) time.runDeferred(1);
            else if (time.nextDue !== undefined) time.advance(time.nextDue - time.now);
            else break;
          }
          const used = drv.takeUsed();
          expect(drv.needsReset).toBe(false);
          expect(used.map((u) => u.id).sort((a, b) => a - b)).toEqual(posted.map((p) => p.head).sort((a, b) => a - b));

          const allowed = new Uint8Array(RAM);
          allowed.fill(1, q.layout.usedAddr, q.layout.usedAddr + Used.size(q.size));
          const usedEvent = q.layout.availAddr + 4 + 2 * q.size;
          allowed.fill(1, usedEvent, usedEvent + 2);
          for (const u of used) {
            const p = posted.find((x) => x.head === u.id)!;
            if (!p.valid || p.writableTotal === 0) {
              expect(u.len).toBe(0);
              continue;
            }
            const cap = Math.min(p.writableTotal, MAX_BYTES_PER_REQUEST);
            if (c.rateLimit === undefined) expect(u.len).toBe(cap);
            else expect(u.len).toBeGreaterThan(0);
            expect(u.len).toBeLessThanOrEqual(cap);
            const got = drv.writtenBytes(u);
            expect(sameBytes(got, source.expected(streamOffset, u.len))).toBe(true);
            streamOffset += u.len;
            let left = u.len;
            for (const b of p.bufs) {
              const n = Math.min(left, b.len);
              allowed.fill(1, b.addr, b.addr + n);
              left -= n;
            }
          }
          expect(source.produced).toBe(streamOffset);
          expect(strayWrites(before, drv.ram, allowed)).toEqual([]);
        }
        expect(device.bytesDelivered).toBe(streamOffset);
        if (c.rateLimit !== undefined) {
          expect(streamOffset).toBeLessThanOrEqual(c.rateLimit.burstBytes + (c.rateLimit.bytesPerSecond * time.now) / 1000);
        }
      }),
      params,
    );
  });
});
