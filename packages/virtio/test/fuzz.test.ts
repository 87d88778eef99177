// Property tests: random guest memory, rings, descriptors and register accesses. Whatever the guest
// writes, nothing throws out of the queue, the transport or the console, no view request is malformed,
// no byte outside guest RAM changes, and the device changes guest RAM only in the used ring and in the
// device-writable buffers it was given.
//
// `pnpm test` runs a few hundred cases. For the long run (100k cases per property):
//   cd /work/main && HYPE_FUZZ_RUNS=100000 pnpm vitest run packages/virtio/test/fuzz.test.ts
// (or `pnpm --filter @hype/virtio fuzz`). HYPE_FUZZ_SEED=<n> replays a reported failure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConsoleDevice } from '../src/console.js';
import { Status } from '../src/features.js';
import { MmioReg } from '../src/mmio-registers.js';
import { MmioTransport } from '../src/mmio.js';
import { SplitQueue, validateQueueLayout } from '../src/queue.js';
import { Avail, Used } from '../src/ring-layout.js';
import { DriverQueue, readDeviceFeatures, writeDriverFeatures } from '../src/testing/index.js';
import { GuardedMemory } from './guarded-memory.js';

const RUNS = Number(process.env.HYPE_FUZZ_RUNS ?? 300);
const SEED = process.env.HYPE_FUZZ_SEED === undefined ? undefined : Number(process.env.HYPE_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
const timeout = Math.max(30_000, RUNS * 5);

const RAM_SIZE = 0x4000;
const DESC = 0x0;
const AVAIL = 0x200;
const USED = 0x300;
const IND = [0x800, 0xa00];
const DATA = 0x1000;

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
// Biased towards well-formed values so chains get deep enough to hit every check, with a tail of
// arbitrary ones.
const addrArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: DATA, max: RAM_SIZE - 64 }).map(BigInt) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ...IND.map(BigInt),
      BigInt(RAM_SIZE - 1),
      BigInt(RAM_SIZE),
      BigInt(RAM_SIZE - 16),
      BigInt(USED),
      2n ** 32n,
      2n ** 52n,
      2n ** 64n - 16n,
    ),
  },
  { weight: 1, arbitrary: u64 },
);
const lenArb = fc.oneof(
  { weight: 6, arbitrary: fc.nat(64) },
  { weight: 2, arbitrary: fc.constantFrom(0, 16, 32, 48, 64, 128, 0x100000, 0x8000_0000, 0xffff_ffff) },
  { weight: 1, arbitrary: fc.nat(0xffff_ffff) },
);
const flagsArb = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(0, 1, 2, 3) },
  { weight: 2, arbitrary: fc.constantFrom(4, 5, 6, 7) },
  { weight: 1, arbitrary: fc.nat(0xffff) },
);
const nextArb = fc.oneof({ weight: 8, arbitrary: fc.nat(18) }, { weight: 1, arbitrary: fc.nat(0xffff) });
const plainDescArb = fc.record({ addr: addrArb, len: lenArb, flags: flagsArb, next: nextArb });
const indirectDescArb = fc.record({
  addr: fc.constantFrom(...IND.map(BigInt)),
  len: fc.oneof(fc.integer({ min: 1, max: 8 }).map((n) => 16 * n), lenArb),
  flags: fc.constantFrom(4, 4, 4, 4 | 2, 4 | 1),
  next: nextArb,
});
const anyDescArb = fc.oneof({ weight: 8, arbitrary: plainDescArb }, { weight: 1, arbitrary: indirectDescArb });
const descArb = fc.record({
  table: fc.constantFrom(-1, 0, 1),
  index: fc.nat(20),
  desc: anyDescArb,
});
/** A head index: usually inside the queue (wrapped by its size), sometimes anything. */
const headArb = fc.oneof(
  { weight: 8, arbitrary: fc.nat(15).map((v) => ({ v, wrap: true })) },
  { weight: 1, arbitrary: fc.nat(0xffff).map((v) => ({ v, wrap: false })) },
);
const queueOpArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('pop' as const), written: fc.oneof(fc.nat(64), fc.nat(0xffff_ffff), fc.constant(-1)) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('popChain' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('publish' as const), head: headArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('completeLate' as const), which: fc.nat(40), written: fc.nat(0xffff_ffff) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('interrupt' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('enable' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('disable' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('availIdx' as const), value: fc.oneof(fc.nat(40), fc.nat(0xffff)) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('usedEvent' as const), value: fc.nat(0xffff) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('availFlags' as const), value: fc.nat(0xffff) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('desc' as const), desc: descArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stop' as const) }) },
);

describe('property: split queue over hostile rings', () => {
  it(
    'never throws, never touches memory outside RAM, writes only the used ring and writable buffers',
    () => {
      fc.assert(
        fc.property(
          fc.record({
            seed: fc.integer(),
            size: fc.constantFrom(1, 2, 4, 8, 16),
            eventIdx: fc.boolean(),
            indirect: fc.boolean(),
            mainTable: fc.array(anyDescArb, { minLength: 16, maxLength: 16 }),
            indirectTables: fc.array(fc.array(anyDescArb, { minLength: 8, maxLength: 8 }), { minLength: 2, maxLength: 2 }),
            avail: fc.array(headArb, { maxLength: 20 }),
            usedEvent: fc.nat(0xffff),
            ops: fc.array(queueOpArb, { maxLength: 40 }),
          }),
          (s) => {
            const memory = new GuardedMemory(RAM_SIZE);
            memory.fillRandom(s.seed);
            const layout = { size: s.size, descAddr: DESC, availAddr: AVAIL, usedAddr: USED };
            const driver = new DriverQueue(memory.ram, layout);
            const placeDesc = (d: { table: number; index: number; desc: (typeof s.mainTable)[number] }) => {
              const table = d.table < 0 ? DESC : IND[d.table];
              driver.setDesc(d.index % (d.table < 0 ? s.size : 8), d.desc, table);
            };
            s.mainTable.slice(0, s.size).forEach((desc, index) => placeDesc({ table: -1, index, desc }));
            s.indirectTables.forEach((t, table) => t.forEach((desc, index) => placeDesc({ table, index, desc })));
            driver.setAvailFlags(0);
            driver.setAvailIdx(0);
            driver.setUsedEvent(s.usedEvent);
            const headOf = (h: { v: number; wrap: boolean }) => (h.wrap ? h.v % s.size : h.v);
            for (const head of s.avail.slice(0, s.size)) driver.publish(headOf(head));
            const before = memory.ram.slice();

            const allowed: Array<[number, number]> = [[USED, USED + Used.size(s.size)]];
            const queue = SplitQueue.create({
              index: 0,
              layout,
              maxSize: 16,
              memory,
              eventIdx: s.eventIdx,
              indirect: s.indirect,
              interrupt: () => {},
            });
            expect(queue).toBeInstanceOf(SplitQueue);
            const q = queue as SplitQueue;
            const popped: Array<ReturnType<SplitQueue['pop']>> = [];
            const useChain = (chain: NonNullable<ReturnType<SplitQueue['pop']>>, written: number, completeNow: boolean) => {
              if (chain.kind === 'chain') {
                for (const b of chain.buffers) if (b.writable) allowed.push([b.addr, b.addr + b.len]);
                const reader = chain.reader();
                const sink = new Uint8Array(4096);
                while (reader.read(sink) > 0);
                expect(reader.remaining).toBe(0);
                const writer = chain.writer();
                // Fill at most 64 KiB per chain by copying, the rest as views (as a block device would).
                writer.write(new Uint8Array(Math.min(writer.remaining, 65536)).fill(0x5a));
                for (const v of writer.views()) v.fill(0x3c);
                expect(writer.written).toBe(chain.writableLength);
                for (const v of chain.views) if (v.length > 0) expect(v.buffer).toBe(memory.backing.buffer);
              }
              if (completeNow) q.addUsed(chain, written);
            };
            for (const op of s.ops) {
              switch (op.op) {
                case 'pop': {
                  const chain = q.pop();
                  if (chain !== null) useChain(chain, op.written, op.written % 2 === 0);
                  popped.push(chain);
                  break;
                }
                case 'popChain': {
                  const chain = q.popChain();
                  if (chain !== null) useChain(chain, chain.writableLength, true);
                  break;
                }
                case 'completeLate': {
                  const chain = popped[op.which % Math.max(1, popped.length)];
                  if (chain) q.addUsed(chain, op.written);
                  break;
                }
                case 'interrupt':
                  q.interruptIfNeeded();
                  break;
                case 'enable':
                  q.enableNotifications();
                  break;
                case 'disable':
                  q.disableNotifications();
                  break;
                case 'publish':
                  driver.publish(headOf(op.head));
                  break;
                case 'availIdx':
                  driver.setAvailIdx(op.value);
                  break;
                case 'usedEvent':
                  driver.setUsedEvent(op.value);
                  break;
                case 'availFlags':
                  driver.setAvailFlags(op.value);
                  break;
                case 'desc':
                  placeDesc(op.desc);
                  before.set(memory.ram); // a driver write, not the device's
                  break;
                case 'stop':
                  q.stop();
                  break;
              }
              // Driver-side writes above are re-snapshotted; restore the device's view of "before"
              // for ring fields the test driver itself wrote.
              if (op.op === 'publish' || op.op === 'availIdx' || op.op === 'usedEvent' || op.op === 'availFlags') {
                before.set(memory.ram.subarray(AVAIL, AVAIL + Avail.size(16)), AVAIL);
              }
            }
            expect(memory.badRequests).toEqual([]);
            expect(memory.damagedGuards()).toEqual([]);
            expect(q.inFlight).toBeGreaterThanOrEqual(0);
            for (let i = 0; i < RAM_SIZE; i++) {
              if (memory.ram[i] !== before[i] && !allowed.some(([a, b]) => i >= a && i < b)) {
                throw new Error(`device wrote guest byte 0x${i.toString(16)} outside the used ring and writable buffers`);
              }
            }
          },
        ),
        params,
      );
    },
    timeout,
  );

  it(
    'queue layout validation accepts only sane layouts, for any register values',
    () => {
      const memory = new GuardedMemory(RAM_SIZE);
      fc.assert(
        fc.property(
          fc.oneof(fc.nat(40), fc.nat(0xffff_ffff)),
          fc.oneof(fc.nat(RAM_SIZE + 64), fc.constant(-1), fc.nat(2 ** 52)),
          fc.oneof(fc.nat(RAM_SIZE + 64), fc.constant(-1), fc.nat(2 ** 52)),
          fc.oneof(fc.nat(RAM_SIZE + 64), fc.constant(-1), fc.nat(2 ** 52)),
          (size, descAddr, availAddr, usedAddr) => {
            const error = validateQueueLayout(0, { size, descAddr, availAddr, usedAddr }, 256, memory);
            if (error === undefined) {
              expect(size > 0 && size <= 256 && (size & (size - 1)) === 0).toBe(true);
              expect(descAddr % 16 === 0 && descAddr + 16 * size <= RAM_SIZE).toBe(true);
              expect(availAddr % 2 === 0 && availAddr + 6 + 2 * size <= RAM_SIZE).toBe(true);
              expect(usedAddr % 4 === 0 && usedAddr + 6 + 8 * size <= RAM_SIZE).toBe(true);
            }
            expect(memory.badRequests).toEqual([]);
          },
        ),
        params,
      );
    },
    timeout,
  );
});

const registerOffsets = Object.values(MmioReg);
const mmioOpArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('write' as const),
      offset: fc.oneof(fc.constantFrom(...registerOffsets), fc.nat(0x120)),
      size: fc.constantFrom(4, 4, 4, 4, 1, 2, 8, 3),
      value: fc.oneof(
        fc.constantFrom(0, 1, 2, 3, 4, 7, 8, 0xb, 0xf, 0x40, 0x4f, 0x8f, 16, 0x10000, DESC, AVAIL, USED, 0xffff_ffff),
        fc.nat(0xffff_ffff),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('read' as const),
      offset: fc.oneof(fc.constantFrom(...registerOffsets), fc.nat(0x120)),
      size: fc.constantFrom(4, 1, 2, 8),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('notify' as const), queue: fc.oneof(fc.nat(2), fc.nat(0xffff_ffff)) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('input' as const), bytes: fc.uint8Array({ maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drain' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('bringUp' as const), size: fc.constantFrom(1, 4, 8, 16, 3, 0), acceptAll: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ring' as const), at: fc.nat(RAM_SIZE - 1), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('resize' as const), cols: fc.nat(0xffff), rows: fc.nat(0xffff) }) },
);

describe('property: virtio-mmio transport + console under random register traffic', () => {
  it(
    'never throws and never touches memory outside RAM',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer(), fc.array(mmioOpArb, { maxLength: 60 }), async (seed, ops) => {
          const memory = new GuardedMemory(RAM_SIZE);
          memory.fillRandom(seed);
          let full = false;
          let drain: (() => void) | undefined;
          let onData: ((b: Uint8Array) => void) | undefined;
          const console_ = new ConsoleDevice({
            sink: {
              write: () => (full = !full),
              onDrain: (l) => (drain = l),
            },
            source: { onData: (l) => (onData = l), pause() {}, resume() {} },
            size: { cols: 80, rows: 24 },
            queueSize: 16,
          });
          const transport = new MmioTransport(console_, { memory, interrupt: () => {} });
          for (const op of ops) {
            switch (op.op) {
              case 'write':
                transport.write(op.offset, op.size, op.value);
                break;
              case 'read': {
                const value = transport.read(op.offset, op.size);
                expect(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff).toBe(true);
                break;
              }
              case 'notify':
                transport.notify(op.queue);
                break;
              case 'input':
                onData?.(op.bytes);
                break;
              case 'drain':
                full = false;
                drain?.();
                break;
              case 'ring':
                memory.ram.set(op.bytes.subarray(0, RAM_SIZE - op.at), op.at);
                break;
              case 'resize':
                console_.resize(op.cols, op.rows);
                break;
              case 'bringUp': {
                const w = (reg: number, v: number) => transport.write(reg, 4, v);
                w(MmioReg.STATUS, 0);
                w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
                const offered = readDeviceFeatures(transport);
                writeDriverFeatures(transport, op.acceptAll ? offered : offered & 0xffff_ffffn);
                w(MmioReg.STATUS, transport.status | Status.FEATURES_OK);
                for (const [index, base] of [
                  [0, 0],
                  [1, 0x400],
                ]) {
                  w(MmioReg.QUEUE_SEL, index);
                  w(MmioReg.QUEUE_NUM, op.size);
                  w(MmioReg.QUEUE_DESC_LOW, DESC + base);
                  w(MmioReg.QUEUE_DRIVER_LOW, AVAIL + base);
                  w(MmioReg.QUEUE_DEVICE_LOW, USED + base);
                  w(MmioReg.QUEUE_READY, 1);
                }
                w(MmioReg.STATUS, transport.status | Status.DRIVER_OK);
                break;
              }
            }
          }
          // Let scheduled console work run, then stop it.
          await new Promise((r) => setTimeout(r, 0));
          transport.reset();
          expect(memory.badRequests).toEqual([]);
          expect(memory.damagedGuards()).toEqual([]);
        }),
        params,
      );
    },
    timeout,
  );
});
