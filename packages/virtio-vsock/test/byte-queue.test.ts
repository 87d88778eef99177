// ByteQueue: FIFO order across segments, guest-memory copies in and out, and the memory it holds or
// hands out following the bytes (not the number of pushes).
import { ChainReader, ChainWriter } from '@hype/virtio';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteQueue, SEGMENT_BYTES } from '../src/index.js';
import { concat, pattern, sameBytes } from './helpers.js';

describe('ByteQueue', () => {
  it('keeps order through push/pushFrom and shift/writeTo in any mix', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: 0, max: 40_000 }) }),
            fc.record({ op: fc.constant('pushFrom' as const), n: fc.integer({ min: 0, max: 40_000 }), split: fc.integer({ min: 1, max: 5 }) }),
            fc.record({ op: fc.constant('shift' as const) }),
            fc.record({ op: fc.constant('writeTo' as const), n: fc.integer({ min: 0, max: 40_000 }), split: fc.integer({ min: 1, max: 5 }) }),
          ),
          { maxLength: 40 },
        ),
        (ops) => {
          const q = new ByteQueue();
          let pushed = 0;
          const out: Uint8Array[] = [];
          for (const o of ops) {
            if (o.op === 'push') {
              q.push(pattern(o.n, pushed));
              pushed += o.n;
            } else if (o.op === 'pushFrom') {
              const src = pattern(o.n, pushed);
              const views = Array.from({ length: o.split }, (_, i) => src.subarray(Math.floor((i * o.n) / o.split), Math.floor(((i + 1) * o.n) / o.split)));
              expect(q.pushFrom(new ChainReader(views), o.n)).toBe(o.n);
              pushed += o.n;
            } else if (o.op === 'shift') {
              const p = q.shift();
              if (p !== undefined) out.push(p.slice());
            } else {
              const dest = new Uint8Array(o.n);
              const views = Array.from({ length: o.split }, (_, i) => dest.subarray(Math.floor((i * o.n) / o.split), Math.floor(((i + 1) * o.n) / o.split)));
              const w = new ChainWriter(views);
              const got = q.writeTo(w, o.n);
              out.push(dest.slice(0, got));
            }
            expect(q.length + out.reduce((n, p) => n + p.length, 0)).toBe(pushed);
          }
          for (let p = q.shift(); p !== undefined; p = q.shift()) out.push(p);
          expect(q.length).toBe(0);
          expect(sameBytes(concat(out), pattern(pushed))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('coalesces small pushes, and a small piece handed out is a copy that pins no segment', () => {
    const q = new ByteQueue();
    for (let i = 0; i < 1000; i++) q.push(Uint8Array.of(i & 0xff));
    const all = q.shift()!;
    expect(all.length).toBe(1000);
    expect(all.buffer.byteLength).toBe(1000); // copied out of a 16 KiB segment
    for (let i = 0; i < 1000; i++) {
      q.push(Uint8Array.of(1));
      const piece = q.shift()!;
      expect(piece.buffer.byteLength).toBe(1);
    }
    // A piece filling most of its segment is handed out without a copy.
    q.push(pattern(SEGMENT_BYTES));
    const big = q.shift()!;
    expect(big.buffer.byteLength).toBe(SEGMENT_BYTES);
    q.push(pattern(10));
    expect(q.shift()!.buffer).not.toBe(big.buffer); // the sealed segment is never written again
  });
});
