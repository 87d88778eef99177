// The driver-side harness (@hype/virtio/testing) itself, driving the console device; and FakeClock.
import { describe, expect, it } from 'vitest';
import { ConsoleDevice, ConsoleFeature } from '../src/console.js';
import { Feature, Status, featureMask } from '../src/features.js';
import { ArrayGuestMemory } from '../src/memory.js';
import { MmioReg } from '../src/mmio-registers.js';
import { Desc } from '../src/ring-layout.js';
import {
  BumpAllocator,
  DriverQueue,
  FakeClock,
  TEST_RINGS_BASE,
  VirtioTestDriver,
  chainBuffersOf,
  queueLayoutAt,
  writtenBytes,
} from '../src/testing/index.js';

const RX = 0;
const TX = 1;

function consoleDriver(options: ConstructorParameters<typeof VirtioTestDriver>[1] = {}) {
  const out: string[] = [];
  let push: (bytes: Uint8Array) => void = () => {};
  const device = new ConsoleDevice({
    sink: { write: (b) => (out.push(new TextDecoder().decode(b)), true), onDrain: () => {} },
    source: { onData: (f) => (push = f), pause: () => {}, resume: () => {} },
    size: { cols: 80, rows: 25 },
  });
  const drv = new VirtioTestDriver(device, options);
  return { drv, device, out, type: (s: string) => push(new TextEncoder().encode(s)) };
}

describe('VirtioTestDriver', () => {
  it('brings the device up like Linux: features masked, every queue at its size, rings apart, buffers after them', () => {
    const { drv } = consoleDriver({ queueSizes: [8, 32], acceptMask: ~featureMask(Feature.RING_EVENT_IDX) });
    const features = drv.init();
    expect(features & featureMask(Feature.RING_EVENT_IDX)).toBe(0n);
    expect(features & featureMask(ConsoleFeature.SIZE)).not.toBe(0n);
    expect(features).toBe(drv.offeredFeatures() & ~featureMask(Feature.RING_EVENT_IDX));
    expect(drv.transport.driverFeatures).toBe(features);
    expect(drv.status).toBe(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    const live = drv.transport.activeQueues;
    expect(live.map((q) => q?.size)).toEqual([8, 32]);
    expect(live.map((q) => q?.eventIdx)).toEqual([false, false]);
    expect(live.map((q) => q?.layout)).toEqual(drv.queues.map((q) => q.layout));
    const [a, b] = drv.queues.map((q) => q.layout);
    expect(a.descAddr).toBe(TEST_RINGS_BASE);
    expect(b.descAddr).toBe(queueLayoutAt(TEST_RINGS_BASE, 8).end);
    expect(drv.allocator.start).toBe(queueLayoutAt(b.descAddr, 32).end);
    expect(drv.alloc(1)).toBe(drv.allocator.start);
    expect(drv.alloc(3) % 16).toBe(0);
    expect(drv.configU16(0)).toBe(80);
    expect(drv.configU16(2)).toBe(25);
  });

  it('posts direct and indirect chains, gives descriptors back, counts interrupts', () => {
    const { drv, out } = consoleDriver({ queueSize: 4 });
    drv.init();
    const head = drv.submit([drv.readable(new TextEncoder().encode('he')), drv.readable(new TextEncoder().encode('llo'))], { queue: TX });
    expect(out.join('')).toBe('hello');
    expect(drv.queue(TX).freeDescriptors).toBe(2);
    expect(drv.takeUsed(TX)).toEqual([{ id: head, len: 0 }]);
    expect(drv.queue(TX).freeDescriptors).toBe(4);
    expect(drv.interrupts).toBe(1);
    expect(drv.interruptLevel).toBe(true);
    expect(drv.usedInterruptPending).toBe(true);
    expect(drv.ackInterrupt()).toBe(1);
    expect(drv.interruptLevel).toBe(false);

    const ind = drv.submitIndirect([drv.readable(new TextEncoder().encode(', ')), drv.readable(new TextEncoder().encode('world'))], { queue: TX });
    expect(out.join('')).toBe('hello, world');
    expect(drv.queue(TX).getDesc(ind).len).toBe(2 * Desc.SIZE);
    expect(drv.takeUsed(TX)).toEqual([{ id: ind, len: 0 }]);
    expect(drv.queue(TX).freeDescriptors).toBe(4);
    // More buffers than free descriptors is a harness error, not a device one.
    expect(() => drv.submit(Array.from({ length: 5 }, () => drv.readable(1)), { queue: TX })).toThrow(/5 descriptors wanted, 4 free/);
  });

  it('reads back what the device wrote, across writable buffers; waitUsed yields until it arrives', async () => {
    const { drv, type } = consoleDriver();
    drv.init();
    const bufs = [drv.writable(3, 0xee), drv.writable(8, 0xee)];
    drv.submit(bufs, { queue: RX, notify: false });
    const waiting = drv.waitUsed(1, { queue: RX });
    type('abcdef');
    const [used] = await waiting;
    expect(used.len).toBe(6);
    expect(new TextDecoder().decode(drv.writtenBytes(used))).toBe('abcdef');
    expect(writtenBytes(drv.memory, used)).toEqual(drv.writtenBytes(used));
    expect(chainBuffersOf(used)).toEqual(bufs);
    expect(drv.bytes(bufs[1].addr, 8)[3]).toBe(0xee); // untouched tail keeps its fill
    expect(() => drv.writtenBytes({ id: 0, len: 1 })).toThrow(/not taken from a harness queue/);
    await expect(drv.waitUsed(1, { queue: RX, timeoutMs: 20 })).rejects.toThrow(/timed out/);
  });

  it('reset, then init again with fresh rings', () => {
    const { drv, out } = consoleDriver({ queueSize: 4 });
    drv.init();
    drv.submit([drv.readable(new TextEncoder().encode('a'))], { queue: TX });
    drv.reset();
    expect(drv.status).toBe(0);
    expect(drv.transport.isActive).toBe(false);
    drv.init();
    expect(drv.queue(TX).usedIdx).toBe(0);
    expect(drv.queue(TX).availIdx).toBe(0);
    drv.submit([drv.readable(new TextEncoder().encode('b'))], { queue: TX });
    expect(out.join('')).toBe('ab');
    expect(drv.takeUsed(TX)).toHaveLength(1);
  });

  it('shows refusals: DEVICE_NEEDS_RESET, FEATURES_OK refused, a queue above QueueNumMax', () => {
    const oneQueue = consoleDriver({ queueSizes: [16] }).drv; // the console needs both queues
    expect(oneQueue.bringUp() & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
    expect(oneQueue.needsReset).toBe(true);
    expect(() => oneQueue.init()).toThrow(/did not start.*needs both/);

    const legacy = consoleDriver({ acceptMask: ~featureMask(Feature.VERSION_1) }).drv;
    expect(legacy.bringUp() & Status.FEATURES_OK).toBe(0);
    expect(legacy.negotiated).toBe(0n);
    expect(() => legacy.init()).toThrow(/FEATURES_OK refused.*VERSION_1/);

    const big = consoleDriver({ queueSize: 512 }).drv;
    expect(() => big.init()).toThrow(/queue 0 size 512 above its QueueNumMax 256/);
    expect(big.reg(MmioReg.STATUS)).toBe(0);
  });

  it('transport options reach the transport', () => {
    const { drv } = consoleDriver({ transport: { eventIdx: false, indirectDescriptors: false, vendorId: 0x1234 } });
    expect(drv.offeredFeatures() & (featureMask(Feature.RING_EVENT_IDX) | featureMask(Feature.RING_INDIRECT_DESC))).toBe(0n);
    expect(drv.reg(MmioReg.VENDOR_ID)).toBe(0x1234);
    expect(() => new VirtioTestDriver(new ConsoleDevice({ sink: { write: () => true, onDrain: () => {} } }), { ramSize: 0x2000 })).toThrow(/cannot hold the rings/);
  });
});

describe('BumpAllocator and DriverQueue', () => {
  it('allocates aligned, never-overlapping ranges, fills them, and says when it is full', () => {
    const ram = new Uint8Array(0x100);
    const a = new BumpAllocator(new ArrayGuestMemory(ram), 0x10, 0x100);
    expect(a.alloc(0)).toBe(0x10);
    expect(a.alloc(5, 7)).toBe(0x20);
    expect([...ram.subarray(0x20, 0x26)]).toEqual([7, 7, 7, 7, 7, 0]);
    expect(a.alloc(4, Uint8Array.of(1, 2, 3, 4, 5, 6))).toBe(0x30);
    expect([...ram.subarray(0x30, 0x35)]).toEqual([1, 2, 3, 4, 0]);
    expect(a.alloc(2, undefined, 64)).toBe(0x40);
    expect(() => a.alloc(0x100)).toThrow(/do not fit/);
    expect(() => a.alloc(1, undefined, 3)).toThrow(/power of two/);
    a.reset();
    expect(a.alloc(1)).toBe(0x10);
  });

  it('writes raw ring fields wherever it is told, and never in its constructor', () => {
    const ram = new Uint8Array(0x4000).fill(0x5a);
    const q = new DriverQueue(ram, { size: 4, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000 });
    expect(ram.every((b) => b === 0x5a)).toBe(true);
    q.reset();
    q.setDesc(1, { addr: 2n ** 64n - 1n, len: 0xffff_ffff, flags: 0xffff, next: 0x1_0003 });
    expect(q.getDesc(1)).toEqual({ addr: 2n ** 64n - 1n, len: 0xffff_ffff, flags: 0xffff, next: 3 });
    q.setAvailRing(3, 0xbeef);
    q.setAvailIdx(0x1_0005);
    expect(q.availIdx).toBe(5);
    q.publish(2);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint16(0x2000 + 4 + 2 * 3, true)).toBe(0xbeef);
    expect(dv.getUint16(0x2000 + 4 + 2 * 1, true)).toBe(2);
    expect(dv.getUint16(0x2002, true)).toBe(6);
    expect(() => q.setDesc(0, { addr: 0, len: 0 }, 0x10000)).toThrow(/not guest RAM/);
  });
});

describe('FakeClock', () => {
  it('fires due timers in due order (ties as set), each at its own time, and ends at now + ms', () => {
    const time = new FakeClock();
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${time.clock()}`);
    time.setTimer(at('c'), 30);
    time.setTimer(at('a'), 10);
    time.setTimer(at('b'), 10);
    time.setTimer(at('late'), 100);
    expect([time.pendingTimers, time.nextDue]).toEqual([4, 10]);
    time.advance(9);
    expect(fired).toEqual([]);
    expect(time.now).toBe(9);
    time.advance(41);
    expect(fired).toEqual(['a@10', 'b@10', 'c@30']);
    expect([time.now, time.pendingTimers, time.nextDue]).toEqual([50, 1, 100]);
    time.advance(50);
    expect(fired).toEqual(['a@10', 'b@10', 'c@30', 'late@100']);
    expect([time.pendingTimers, time.nextDue]).toEqual([0, undefined]);
  });

  it('runs a timer that a firing timer sets when it comes due in the same advance, not later ones', () => {
    const time = new FakeClock();
    const fired: number[] = [];
    time.setTimer(() => {
      fired.push(time.now);
      time.setTimer(() => fired.push(time.now), 5);
      time.setTimer(() => fired.push(time.now), 50);
    }, 10);
    time.advance(20);
    expect(fired).toEqual([10, 15]);
    expect([time.now, time.nextDue]).toEqual([20, 60]);
  });

  it('clearTimer cancels and counts every call; handles that fired or are foreign do nothing', () => {
    const time = new FakeClock();
    const fired: string[] = [];
    const a = time.setTimer(() => fired.push('a'), 10);
    const b = time.setTimer(() => fired.push('b'), 20);
    time.clearTimer(b);
    expect([time.pendingTimers, time.nextDue, time.cleared]).toEqual([1, 10, 1]);
    time.advance(100);
    time.clearTimer(a);
    time.clearTimer(b);
    time.clearTimer(undefined);
    expect(fired).toEqual(['a']);
    expect([time.pendingTimers, time.cleared]).toEqual([0, 4]);
    // A timer cleared by another one firing at the same time does not fire.
    let c: unknown;
    time.setTimer(() => time.clearTimer(c), 1);
    c = time.setTimer(() => fired.push('c'), 1);
    time.advance(1);
    expect(fired).toEqual(['a']);
  });

  it('runs deferred callbacks a turn at a time; what a turn defers waits for the next', () => {
    const time = new FakeClock();
    const ran: string[] = [];
    time.defer(() => {
      ran.push('1a');
      time.defer(() => {
        ran.push('2');
        time.defer(() => ran.push('3'));
      });
    });
    time.defer(() => ran.push('1b'));
    expect(time.deferred).toHaveLength(2);
    expect(time.runDeferred(1)).toBe(1);
    expect(ran).toEqual(['1a', '1b']);
    expect(time.deferred).toHaveLength(1);
    expect(time.runDeferred()).toBe(2);
    expect(ran).toEqual(['1a', '1b', '2', '3']);
    expect(time.runDeferred()).toBe(0);
  });

  it('its functions are bound, as device options take them', () => {
    const time = new FakeClock();
    const { clock, setTimer, clearTimer, defer } = time;
    const fired: string[] = [];
    setTimer(() => fired.push(`timer@${clock()}`), 5);
    clearTimer(setTimer(() => fired.push('cleared'), 1));
    defer(() => fired.push('deferred'));
    time.advance(5);
    time.runDeferred();
    expect(fired).toEqual(['timer@5', 'deferred']);
    expect([clock(), time.cleared]).toEqual([5, 1]);
  });
});
