// The entropy device behind the real virtio-mmio transport, driven through @hype/virtio/testing.
import { DescFlag, DeviceId, Feature, MmioReg, Status, featureMask } from '@hype/virtio';
import { VirtioTestDriver } from '@hype/virtio/testing';
import { describe, expect, it } from 'vitest';
import {
  EntropyDevice,
  MAX_BYTES_PER_REQUEST,
  MAX_BYTES_PER_TURN,
  MAX_CHAINS_PER_TURN,
  SCRATCH_BYTES,
  SOURCE_CHUNK_BYTES,
  TokenBucket,
} from '../src/index.js';
import { CountingSource, rig, sameBytes } from './helpers.js';

const TRANSPORT_BITS = featureMask(Feature.VERSION_1) | featureMask(Feature.RING_INDIRECT_DESC) | featureMask(Feature.RING_EVENT_IDX);

describe('virtio-rng: identity', () => {
  it('device id 4, one request queue, no device features, no configuration space', () => {
    const device = new EntropyDevice({ source: () => {} });
    expect(device.deviceType).toBe(DeviceId.RNG);
    expect(device.deviceType).toBe(4);
    expect(device.queueMaxSizes).toEqual([256]);
    expect(device.configSize).toBe(0);
    const drv = new VirtioTestDriver(device);
    expect(drv.reg(MmioReg.DEVICE_ID)).toBe(4);
    expect(drv.offeredFeatures()).toBe(TRANSPORT_BITS);
    expect(drv.configU8(0)).toBe(0);
    drv.writeConfig(0, 1, 1);
    expect(drv.warnings).toHaveLength(2); // both outside a 0-byte config space, refused by the transport
    expect(new EntropyDevice({ source: () => {}, queueSize: 16 }).queueMaxSizes).toEqual([16]);
  });

  it('rejects bad options with an error naming the option', () => {
    const source = () => {};
    expect(() => new EntropyDevice({ source, queueSize: 3 })).toThrow(/queueSize 3/);
    expect(() => new EntropyDevice({ source, queueSize: 65536 })).toThrow(RangeError);
    expect(() => new EntropyDevice({ source: 42 as unknown as () => void })).toThrow(/source must be a function/);
    for (const bytesPerSecond of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '10' as unknown as number]) {
      expect(() => new EntropyDevice({ source, rateLimit: { bytesPerSecond, burstBytes: 10 } })).toThrow(/rateLimit\.bytesPerSecond must be a positive finite number/);
    }
    for (const burstBytes of [0, 0.5, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new EntropyDevice({ source, rateLimit: { bytesPerSecond: 10, burstBytes } })).toThrow(/rateLimit\.burstBytes must be a finite number of bytes, at least 1/);
    }
    expect(() => new EntropyDevice({ source, rateLimit: null as unknown as { bytesPerSecond: number; burstBytes: number } })).toThrow(RangeError);
  });

  it('the bounds are what the documentation says', () => {
    expect(MAX_BYTES_PER_REQUEST).toBe(65536);
    expect(MAX_CHAINS_PER_TURN).toBe(64);
    expect(MAX_BYTES_PER_TURN).toBe(1 << 20);
    expect(SOURCE_CHUNK_BYTES).toBe(65536);
    expect(SCRATCH_BYTES).toBeLessThanOrEqual(SOURCE_CHUNK_BYTES);
  });
});

describe('virtio-rng: filling requests', () => {
  it('fills a writable buffer with bytes from the source, exactly, and nothing around it', async () => {
    const { drv, source } = rig();
    const before = drv.writable(16, 0xee);
    const buf = drv.writable(64, 0xee);
    const after = drv.writable(16, 0xee);
    const head = drv.submit([buf]);
    const [used] = drv.takeUsed();
    expect(used).toEqual({ id: head, len: 64 });
    expect(drv.writtenBytes(used)).toEqual(source.expected(0, 64));
    expect(drv.bytes(before.addr, 16).every((b) => b === 0xee)).toBe(true);
    expect(drv.bytes(after.addr, 16).every((b) => b === 0xee)).toBe(true);
    expect(drv.interrupts).toBe(1);
    expect(drv.needsReset).toBe(false);
  });

  it('fills every writable buffer of a chain in order (direct, indirect, with zero-length pieces)', () => {
    const { drv, source, device } = rig();
    const direct = drv.submit([drv.writable(3, 0xee), drv.writable(0), drv.writable(10, 0xee), drv.writable(1, 0xee)]);
    const indirect = drv.submitIndirect([drv.writable(7, 0xee), drv.writable(0), drv.writable(9, 0xee)]);
    const used = drv.takeUsed();
    expect(used).toEqual([
      { id: direct, len: 14 },
      { id: indirect, len: 16 },
    ]);
    expect(drv.writtenBytes(used[0])).toEqual(source.expected(0, 14));
    expect(drv.writtenBytes(used[1])).toEqual(source.expected(14, 16));
    expect(device.bytesDelivered).toBe(30);
  });

  it('returns a chain with device-readable buffers unread and unfilled, length 0, warning once', () => {
    const { drv, source } = rig();
    const readable = drv.readable(16, 0xaa);
    const writable = drv.writable(16, 0xee);
    const a = drv.submit([readable, writable]);
    const b = drv.submitIndirect([drv.readable(4, 0xaa), drv.writable(4, 0xee)]);
    const c = drv.submit([drv.readable(0)]);
    expect(drv.takeUsed()).toEqual([
      { id: a, len: 0 },
      { id: b, len: 0 },
      { id: c, len: 0 },
    ]);
    expect(source.produced).toBe(0);
    expect(drv.bytes(readable.addr, 16).every((x) => x === 0xaa)).toBe(true);
    expect(drv.bytes(writable.addr, 16).every((x) => x === 0xee)).toBe(true);
    expect(drv.warnings.filter((w) => w.includes('device-readable'))).toHaveLength(1);
    expect(drv.needsReset).toBe(false);
    // The device still serves a proper request afterwards.
    const d = drv.submit([drv.writable(8)]);
    expect(drv.takeUsed()).toEqual([{ id: d, len: 8 }]);
  });

  it('a chain with only zero-length writable buffers comes back with length 0 and costs nothing', () => {
    const { drv, source } = rig({ rateLimit: { bytesPerSecond: 1, burstBytes: 1 } });
    const heads = [drv.submit([drv.writable(0)]), drv.submit([drv.writable(0), drv.writable(0)])];
    expect(drv.takeUsed()).toEqual(heads.map((id) => ({ id, len: 0 })));
    expect(source.produced).toBe(0);
    drv.submit([drv.writable(1)]);
    expect(drv.takeUsed()[0].len).toBe(1); // the one token was still there
  });

  it(`fills at most MAX_BYTES_PER_REQUEST (${MAX_BYTES_PER_REQUEST}) per chain and reports that length`, () => {
    const { drv, source } = rig();
    const big = drv.writable(MAX_BYTES_PER_REQUEST + 100, 0xee);
    drv.submit([big]);
    const split = [drv.writable(MAX_BYTES_PER_REQUEST - 10, 0xee), drv.writable(50, 0xee)];
    drv.submit(split);
    const used = drv.takeUsed();
    expect(used.map((u) => u.len)).toEqual([MAX_BYTES_PER_REQUEST, MAX_BYTES_PER_REQUEST]);
    expect(sameBytes(drv.writtenBytes(used[0]), source.expected(0, MAX_BYTES_PER_REQUEST))).toBe(true);
    expect(drv.bytes(big.addr + MAX_BYTES_PER_REQUEST, 100).every((b) => b === 0xee)).toBe(true);
    expect(drv.bytes(split[1].addr + 10, 40).every((b) => b === 0xee)).toBe(true);
    // The source is only ever asked for what fits one getRandomValues call.
    expect(Math.max(...source.calls)).toBeLessThanOrEqual(SOURCE_CHUNK_BYTES);
  });

  it('does at most MAX_CHAINS_PER_TURN chains per turn and continues on a later turn', () => {
    const { drv, time } = rig({}, { queueSize: 128 });
    for (let i = 0; i < 100; i++) drv.submit([drv.writable(16)], { notify: false });
    drv.notify();
    expect(drv.takeUsed()).toHaveLength(MAX_CHAINS_PER_TURN);
    expect(time.deferred).toHaveLength(1);
    drv.notify(); // a notify meanwhile does the next batch at once; the scheduled turn finds the rest
    expect(drv.takeUsed()).toHaveLength(100 - MAX_CHAINS_PER_TURN);
    time.runDeferred();
    expect(drv.takeUsed()).toHaveLength(0);
  });

  it('produces at most MAX_BYTES_PER_TURN per turn and continues on a later turn', () => {
    const { drv, time, source } = rig({}, { queueSize: 32, ramSize: 8 << 20 });
    for (let i = 0; i < 20; i++) drv.submit([drv.writable(MAX_BYTES_PER_REQUEST)], { notify: false });
    drv.notify();
    expect(drv.takeUsed()).toHaveLength(MAX_BYTES_PER_TURN / MAX_BYTES_PER_REQUEST);
    expect(source.produced).toBe(MAX_BYTES_PER_TURN);
    expect(time.runDeferred(1)).toBe(1);
    expect(drv.takeUsed()).toHaveLength(4);
    expect(source.produced).toBe(20 * MAX_BYTES_PER_REQUEST);
  });

  it('the default source is crypto.getRandomValues, called in chunks it accepts', () => {
    const device = new EntropyDevice();
    const drv = new VirtioTestDriver(device);
    drv.init();
    drv.submit([drv.writable(MAX_BYTES_PER_REQUEST, 0)]);
    const [used] = drv.takeUsed();
    expect(used.len).toBe(MAX_BYTES_PER_REQUEST);
    const bytes = drv.writtenBytes(used);
    const counts = new Array<number>(256).fill(0);
    for (const b of bytes) counts[b]++;
    // 64 KiB of uniform bytes: every value appears, none wildly often (expected 256 each).
    expect(Math.min(...counts)).toBeGreaterThan(100);
    expect(Math.max(...counts)).toBeLessThan(450);
  });

  it('a source that throws is a host failure: DEVICE_NEEDS_RESET, nothing thrown to the caller', () => {
    const device = new EntropyDevice({
      source: () => {
        throw new Error('entropy pool gone');
      },
    });
    const drv = new VirtioTestDriver(device);
    drv.init();
    expect(() => drv.submit([drv.writable(8)])).not.toThrow();
    expect(drv.needsReset).toBe(true);
    expect(drv.warnings.join('\n')).toContain('entropy pool gone');
  });
});

describe('virtio-rng: rate limit (token bucket)', () => {
  it('serves the burst at once, then one refill at a time on a timer, never beyond the budget', () => {
    const rate = 1000; // bytes per second: 1 byte per ms
    const burst = 100;
    const { drv, device, time, source } = rig({ rateLimit: { bytesPerSecond: rate, burstBytes: burst } });
    const heads: number[] = [];
    for (let i = 0; i < 6; i++) heads.push(drv.submit([drv.writable(40, 0xee)], { notify: false }));
    drv.notify();
    expect(drv.takeUsed()).toEqual([
      { id: heads[0], len: 40 },
      { id: heads[1], len: 40 },
    ]);
    expect(device.throttled).toBe(true);
    expect(time.nextDue).toBe(20); // 20 bytes left, 40 needed: 20 ms
    drv.notify(); // notifications while throttled take nothing
    expect(drv.queue().pendingUsed).toBe(0);
    time.advance(19);
    expect(drv.queue().pendingUsed).toBe(0);
    time.advance(1);
    expect(drv.takeUsed()).toEqual([{ id: heads[2], len: 40 }]);
    expect(time.nextDue).toBe(60);
    time.advance(1000);
    expect(drv.takeUsed().map((u) => u.len)).toEqual([40, 40, 40]);
    expect(device.throttled).toBe(false);
    expect(source.produced).toBe(240);
    expect(source.produced).toBeLessThanOrEqual(burst + (rate * time.now) / 1000);
  });

  it('never hands out more than burst + rate * elapsed, whatever the requests and timing', () => {
    const rate = 300;
    const burst = 64;
    const { drv, time, source } = rig({ rateLimit: { bytesPerSecond: rate, burstBytes: burst } }, { queueSize: 64 });
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let step = 0; step < 400; step++) {
      if (drv.queue().freeDescriptors > 0 && rnd(2) === 0) drv.submit([drv.writable(1 + rnd(200))]);
      time.advance(rnd(50));
      drv.takeUsed();
      expect(source.produced).toBeLessThanOrEqual(burst + (rate * time.now) / 1000);
    }
    // And it did keep serving: at least what the rate allowed minus one burst of slack.
    expect(source.produced).toBeGreaterThan((rate * time.now) / 1000 - 2 * burst - 200);
  });

  it('a request larger than the burst waits for a full bucket and gets a partial fill', () => {
    const { drv, time } = rig({ rateLimit: { bytesPerSecond: 100, burstBytes: 50 } });
    drv.submit([drv.writable(30)]);
    expect(drv.takeUsed()[0].len).toBe(30);
    const head = drv.submit([drv.writable(500, 0xee)]);
    expect(drv.takeUsed()).toEqual([]);
    time.advance(299); // 20 + 29.9 tokens
    expect(drv.takeUsed()).toEqual([]);
    time.advance(1);
    expect(drv.takeUsed()).toEqual([{ id: head, len: 50 }]);
  });

  it('reset cancels the timer and forgets the held chain; a reset does not refill the bucket', () => {
    const { drv, device, time } = rig({ rateLimit: { bytesPerSecond: 10, burstBytes: 10 } });
    drv.submit([drv.writable(10)]);
    expect(drv.takeUsed()[0].len).toBe(10);
    const held = drv.writable(10, 0xee);
    drv.submit([held]);
    expect(time.pendingTimers).toBe(1);
    const usedBefore = drv.queue().usedIdx;
    drv.reset();
    expect(time.pendingTimers).toBe(0);
    expect(time.cleared).toBe(1);
    expect(device.throttled).toBe(false);
    time.advance(5000);
    expect(drv.bytes(held.addr, 10).every((b) => b === 0xee)).toBe(true);
    expect(drv.queue().usedIdx).toBe(usedBefore);

    // The new driver gets what the bucket holds now (full after 5 s), not a fresh burst on every reset.
    drv.init();
    drv.submit([drv.writable(10)]);
    expect(drv.takeUsed()[0].len).toBe(10);
    drv.submit([drv.writable(10)]);
    expect(drv.takeUsed()).toEqual([]);
    drv.reset();
    drv.init();
    drv.submit([drv.writable(10)]);
    expect(drv.takeUsed()).toEqual([]); // still empty: reset did not refill it
    time.advance(1000);
    expect(drv.takeUsed()[0].len).toBe(10);
  });

  it('a timer that fires after a reset anyway (a host that cannot cancel) is harmless', () => {
    const fired: Array<() => void> = [];
    const source = new CountingSource();
    let now = 0;
    const device = new EntropyDevice({
      source: source.fill,
      rateLimit: { bytesPerSecond: 10, burstBytes: 4 },
      now: () => now,
      setTimer: (fn) => fired.push(fn),
      clearTimer: () => {}, // ignores cancellation
      defer: () => {},
    });
    const drv = new VirtioTestDriver(device);
    drv.init();
    drv.submit([drv.writable(4)]);
    drv.takeUsed();
    const held = drv.writable(4, 0xee);
    drv.submit([held]);
    expect(fired).toHaveLength(1);
    drv.reset();
    drv.init();
    now = 10_000;
    expect(() => fired[0]()).not.toThrow();
    expect(drv.bytes(held.addr, 4).every((b) => b === 0xee)).toBe(true);
    expect(drv.queue().usedIdx).toBe(0);
    expect(source.produced).toBe(4);
    // The live activation is unaffected and works.
    drv.submit([drv.writable(4)]);
    expect(drv.takeUsed()[0].len).toBe(4);
  });

  it('close() cancels the timer', () => {
    const { drv, device, time } = rig({ rateLimit: { bytesPerSecond: 1, burstBytes: 1 } });
    drv.submit([drv.writable(1)]);
    drv.submit([drv.writable(1)]);
    expect(time.pendingTimers).toBe(1);
    device.close();
    expect(time.pendingTimers).toBe(0);
  });

  it('the token bucket ignores a clock that goes backwards and caps very long waits', () => {
    let now = 1000;
    const bucket = new TokenBucket({ bytesPerSecond: 1000, burstBytes: 10 }, () => now);
    expect(bucket.available()).toBe(10);
    bucket.take(10);
    now = 0; // backwards
    expect(bucket.available()).toBe(0);
    now = 1005; // only 5 ms past the latest time seen
    expect(bucket.available()).toBe(5);
    expect(bucket.delayFor(10)).toBe(5);
    expect(bucket.delayFor(1000)).toBe(5); // capped at the capacity

    const slow = rig({ rateLimit: { bytesPerSecond: 1e-9, burstBytes: 1 } });
    slow.drv.submit([slow.drv.writable(1)]);
    slow.drv.submit([slow.drv.writable(1)]);
    expect(slow.time.nextDue).toBe(2 ** 31 - 1);
  });
});

describe('virtio-rng: hostile chains never reset the device', () => {
  it('malformed chains come back with length 0; DEVICE_NEEDS_RESET stays clear', () => {
    const { drv, source } = rig({}, { ramSize: 1 << 20 });
    const q = drv.queue();
    const heads: number[] = [];
    // Buffer outside guest RAM.
    heads.push(drv.submit([{ addr: 2 << 20, len: 16, writable: true }]));
    // Readable after writable (invalid ordering).
    heads.push(drv.submit([drv.writable(8), drv.readable(8)]));
    // Indirect table with a bad length, an indirect inside an indirect, a loop, unknown flags.
    const table = drv.alloc(64);
    q.setDesc(0, { addr: drv.alloc(8), len: 8, flags: DescFlag.WRITE | DescFlag.INDIRECT }, table);
    for (const [i, d] of [
      [10, { addr: table, len: 15, flags: DescFlag.INDIRECT }],
      [11, { addr: table, len: 16, flags: DescFlag.INDIRECT }],
      [12, { addr: drv.alloc(8), len: 8, flags: DescFlag.WRITE | DescFlag.NEXT, next: 12 }],
      [13, { addr: drv.alloc(8), len: 8, flags: DescFlag.WRITE | 0x80 }],
      [14, { addr: 2n ** 64n - 8n, len: 8, flags: DescFlag.WRITE }],
      [15, { addr: drv.alloc(8), len: 0xffff_ffff, flags: DescFlag.WRITE }],
    ] as const) {
      q.setDesc(i, d);
      q.publish(i);
      heads.push(i);
    }
    drv.notify();
    const used = drv.takeUsed();
    expect(used.map((u) => u.id)).toEqual(heads);
    expect(used.every((u) => u.len === 0)).toBe(true);
    expect(source.produced).toBe(0);
    expect(drv.needsReset).toBe(false);
    expect(drv.status & Status.DRIVER_OK).toBe(Status.DRIVER_OK);
  });
});
