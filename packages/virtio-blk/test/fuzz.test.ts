// The guest-side fuzz driver for virtio-blk behind the real virtio-mmio transport.
//   integrity: valid reads and writes interleaved with malformed requests; every valid read returns
//              what the model disk holds, every malformed request gets an error status, and the disk
//              equals the model at the end;
//   chaos:     random descriptors, avail entries, notifies and resets; nothing throws, the event loop is
//              never blocked for long and the heap does not grow without bound.
// `pnpm test` runs a modest count; HYPE_FUZZ_RUNS=5000 for a long run, HYPE_FUZZ_SEED=<n> to replay.
import { MmioReg, Status } from '@hype/virtio';
import { type BufSpec, VirtioTestDriver } from '@hype/virtio/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlkRequestType as T, BlkStatus as S, MemoryBackend, VirtioBlkDevice } from '../src/index.js';
import { headerBytes } from './helpers.js';

const RUNS = Number(process.env.HYPE_FUZZ_RUNS ?? 200);
const SEED = process.env.HYPE_FUZZ_SEED === undefined ? undefined : Number(process.env.HYPE_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const timeout = Math.max(60_000, RUNS * 1500);

const SECTOR = 512;
const DISK_SECTORS = 64;

type Op =
  | { kind: 'write'; sector: number; sectors: number; seed: number }
  | { kind: 'read'; sector: number; sectors: number }
  | { kind: 'bad-type'; type: number }
  | { kind: 'past-end'; sector: number }
  | { kind: 'odd-length'; sector: number; bytes: number }
  | { kind: 'readable-after-writable' }
  | { kind: 'flush-nonzero-sector'; sector: number };

const sectorArb = fc.integer({ min: 0, max: DISK_SECTORS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), sector: sectorArb, sectors: fc.integer({ min: 1, max: 8 }), seed: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('read' as const), sector: sectorArb, sectors: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bad-type' as const), type: fc.integer({ min: 2, max: 0xffff }).filter((t) => ![4, 8, 11, 13].includes(t)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('past-end' as const), sector: fc.integer({ min: DISK_SECTORS, max: 2 ** 31 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('odd-length' as const), sector: sectorArb, bytes: fc.integer({ min: 1, max: 2047 }).filter((n) => n % SECTOR !== 0) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'readable-after-writable' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush-nonzero-sector' as const), sector: fc.integer({ min: 1, max: 1000 }) }) },
);

function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe('fuzz: virtio-blk integrity (valid requests interleaved with malformed ones)', () => {
  it(
    'valid reads see the model disk, malformed requests get an error status, the disk ends equal to the model',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
          const backend = new MemoryBackend(DISK_SECTORS * SECTOR);
          const model = new Uint8Array(DISK_SECTORS * SECTOR);
          const device = new VirtioBlkDevice({ backend, queueSize: 64 });
          const d = new VirtioTestDriver(device, { queueSize: 64, ramSize: 2 << 20 });
          d.init();
          for (const op of ops) {
            const status = d.alloc(1, 0xff);
            const st: BufSpec = { addr: status, len: 1, writable: true };
            const header = (type: number, sector: number): BufSpec => ({ addr: d.alloc(16, headerBytes(type, sector)), len: 16, writable: false });
            let expected: number[];
            let check: (() => void) | undefined;
            switch (op.kind) {
              case 'write': {
                const sectors = Math.min(op.sectors, DISK_SECTORS - op.sector);
                const data = pattern(op.seed, sectors * SECTOR);
                d.submit([header(T.OUT, op.sector), { addr: d.alloc(data.length, data), len: data.length, writable: false }, st]);
                model.set(data, op.sector * SECTOR);
                expected = [S.OK];
                break;
              }
              case 'read': {
                const sectors = Math.min(op.sectors, DISK_SECTORS - op.sector);
                const buf = d.alloc(sectors * SECTOR, 0x5a);
                d.submit([header(T.IN, op.sector), { addr: buf, len: sectors * SECTOR, writable: true }, st]);
                const want = model.slice(op.sector * SECTOR, (op.sector + sectors) * SECTOR);
                check = () => expect(Buffer.from(d.bytes(buf, want.length)).equals(Buffer.from(want))).toBe(true);
                expected = [S.OK];
                break;
              }
              case 'bad-type':
                d.submit([header(op.type, 0), { addr: d.alloc(SECTOR), len: SECTOR, writable: false }, st]);
                expected = [S.UNSUPP];
                break;
              case 'past-end':
                d.submit([header(T.OUT, op.sector), { addr: d.alloc(SECTOR, 0xee), len: SECTOR, writable: false }, st]);
                expected = [S.IOERR];
                break;
              case 'odd-length':
                d.submit([header(T.OUT, op.sector), { addr: d.alloc(op.bytes, 0xee), len: op.bytes, writable: false }, st]);
                expected = [S.IOERR];
                break;
              case 'readable-after-writable':
                d.submit([header(T.OUT, 0), { addr: d.alloc(SECTOR), len: SECTOR, writable: true }, { addr: d.alloc(SECTOR, 0xee), len: SECTOR, writable: false }, st]);
                // Malformed at the virtqueue level (§2.7.4.2): returned with used length 0, status untouched.
                expected = [0xff];
                break;
              case 'flush-nonzero-sector':
                d.submit([header(T.FLUSH, op.sector), st]);
                expected = [S.IOERR, S.UNSUPP];
                break;
            }
            await d.waitUsed(1);
            expect(expected, `${JSON.stringify(op)}: status ${d.bytes(status, 1)[0]}`).toContain(d.bytes(status, 1)[0]);
            check?.();
          }
          expect(Buffer.from(backend.bytes).equals(Buffer.from(model))).toBe(true);
          expect(d.reg(MmioReg.STATUS) & Status.DEVICE_NEEDS_RESET).toBe(0);
        }),
        params,
      );
    },
    timeout,
  );
});

type ChaosStep =
  | { kind: 'desc'; index: number; addr: bigint; len: number; flags: number; next: number }
  | { kind: 'avail'; slot: number; head: number }
  | { kind: 'avail-idx'; advance: number }
  | { kind: 'notify' }
  | { kind: 'reset' };

const chaosArb: fc.Arbitrary<ChaosStep> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('desc' as const),
      index: fc.integer({ min: 0, max: 63 }),
      addr: fc.oneof(fc.bigInt({ min: 0x10000n, max: 0x1f0000n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      len: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.constantFrom(16 * 64, 16 * 65536, 0xffffffff)),
      flags: fc.integer({ min: 0, max: 7 }),
      next: fc.integer({ min: 0, max: 70 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('avail' as const), slot: fc.integer({ min: 0, max: 63 }), head: fc.integer({ min: 0, max: 70 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('avail-idx' as const), advance: fc.integer({ min: 0, max: 200 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'notify' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset' as const }) },
);

describe('fuzz: virtio-blk chaos (random rings, notifies and resets)', () => {
  it(
    'never throws, never blocks the event loop for long, never grows the heap without bound',
    async () => {
      let longestStepMs = 0;
      const heapStart = process.memoryUsage().heapUsed;
      let heapPeak = heapStart;
      await fc.assert(
        fc.asyncProperty(fc.array(chaosArb, { minLength: 1, maxLength: 120 }), async (steps) => {
          const backend = new MemoryBackend(DISK_SECTORS * SECTOR);
          const device = new VirtioBlkDevice({ backend, queueSize: 64 });
          const d = new VirtioTestDriver(device, { queueSize: 64, ramSize: 2 << 20 });
          d.init();
          let availIdx = 0;
          for (const step of steps) {
            const started = performance.now();
            switch (step.kind) {
              case 'desc':
                d.queue().setDesc(step.index, { addr: step.addr, len: step.len, flags: step.flags, next: step.next });
                break;
              case 'avail':
                d.queue().setAvailRing(step.slot, step.head);
                break;
              case 'avail-idx':
                availIdx = (availIdx + step.advance) & 0xffff;
                d.queue().setAvailIdx(availIdx);
                break;
              case 'notify':
                d.notify();
                break;
              case 'reset':
                d.init();
                availIdx = 0;
                break;
            }
            longestStepMs = Math.max(longestStepMs, performance.now() - started);
            await new Promise((r) => setImmediate(r));
          }
          await device.drain();
          heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
        }),
        params,
      );
      expect(longestStepMs).toBeLessThan(50);
      expect(heapPeak - heapStart).toBeLessThan(64 << 20);
    },
    timeout,
  );
});
