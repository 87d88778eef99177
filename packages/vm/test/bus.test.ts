import { describe, expect, it } from 'vitest';
import { Bus, BusRegistrationError, dispatchPio, type BusDevice } from '../src/bus.js';
import type { Logger } from '../src/log.js';

class Recorder implements BusDevice {
  reads: [number, number][] = [];
  writes: [number, number[]][] = [];
  read(offset: number, data: Uint8Array) {
    this.reads.push([offset, data.length]);
    for (let i = 0; i < data.length; i++) data[i] = (offset + i) & 0xff;
  }
  write(offset: number, data: Uint8Array) {
    this.writes.push([offset, [...data]]);
  }
}

function recordingLogger() {
  const debug: string[] = [];
  const logger: Logger = { debug: (m) => debug.push(m), info() {}, warn() {}, error() {} };
  return { logger, debug };
}

describe('Bus', () => {
  it('routes accesses to the device with offsets relative to its base', () => {
    const bus = new Bus('pio');
    const a = new Recorder();
    const b = new Recorder();
    bus.register(0x3f8, 8, a, 'uart');
    bus.register(0x60, 1, b, 'i8042-data');
    const data = new Uint8Array(1);
    expect(bus.read(0x3fd, data)).toBe(true);
    expect(data[0]).toBe(5);
    expect(bus.write(0x60, Uint8Array.of(0xab))).toBe(true);
    expect(a.reads).toEqual([[5, 1]]);
    expect(b.writes).toEqual([[0, [0xab]]]);
  });

  it('rejects overlapping ranges, naming both devices', () => {
    const bus = new Bus('mmio');
    bus.register(0xd000_0000, 0x1000, new Recorder(), 'virtio-blk');
    const tries: [number, number][] = [
      [0xd000_0000, 0x1000], // identical
      [0xcfff_f000, 0x1001], // overlaps the first byte
      [0xd000_0fff, 0x10], // overlaps the last byte
      [0xd000_0100, 0x10], // inside
      [0xcfff_0000, 0x10_0000], // encloses
    ];
    for (const [base, len] of tries) {
      expect(() => bus.register(base, len, new Recorder(), 'virtio-net')).toThrow(/virtio-net .* overlaps virtio-blk/);
    }
    // Adjacent ranges are fine.
    bus.register(0xcfff_f000, 0x1000, new Recorder(), 'below');
    bus.register(0xd000_1000, 0x1000, new Recorder(), 'above');
    expect(bus.list().map((r) => r.name)).toEqual(['below', 'virtio-blk', 'above']);
  });

  it('rejects ranges outside the address space or empty', () => {
    const bus = new Bus('pio');
    expect(() => bus.register(0xfffe, 4, new Recorder(), 'x')).toThrow(BusRegistrationError);
    expect(() => bus.register(0x10, 0, new Recorder(), 'x')).toThrow(BusRegistrationError);
    expect(() => bus.register(-1, 1, new Recorder(), 'x')).toThrow(BusRegistrationError);
  });

  it('absent reads return all-ones, absent writes are ignored, each logged once at debug', () => {
    const { logger, debug } = recordingLogger();
    const bus = new Bus('pio', logger);
    const data = new Uint8Array(4).fill(0x12);
    expect(bus.read(0x80, data)).toBe(false);
    expect([...data]).toEqual([0xff, 0xff, 0xff, 0xff]);
    bus.read(0x80, data);
    expect(bus.write(0x80, Uint8Array.of(1))).toBe(false);
    bus.write(0x80, Uint8Array.of(1));
    expect(debug).toHaveLength(2);
    expect(debug[0]).toMatch(/pio read .* 0x80: no device/);
    expect(debug[1]).toMatch(/pio write .* 0x80: no device, ignored/);
  });

  it('bounds the absent-access log against a guest scanning addresses', () => {
    const { logger, debug } = recordingLogger();
    const bus = new Bus('mmio', logger);
    for (let a = 0; a < 10_000; a++) bus.read(a * 8, new Uint8Array(8));
    expect(debug.length).toBeLessThanOrEqual(257);
    expect(debug.at(-1)).toMatch(/not logged/);
  });

  it('treats an access straddling the end of a range as absent', () => {
    const bus = new Bus('pio');
    const dev = new Recorder();
    bus.register(0x3f8, 8, dev, 'uart');
    const data = new Uint8Array(2);
    expect(bus.read(0x3ff, data)).toBe(false);
    expect([...data]).toEqual([0xff, 0xff]);
    expect(bus.read(0x3f7, data)).toBe(false);
    expect(dev.reads).toEqual([]);
  });

  it('pre-fills reads with all-ones so undriven bytes read as 0xff', () => {
    const bus = new Bus('mmio');
    bus.register(0x1000, 0x10, { read() {}, write() {} }, 'quiet');
    const data = new Uint8Array(4);
    bus.read(0x1000, data);
    expect([...data]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  it('wraps device exceptions with the address and device name', () => {
    const bus = new Bus('pio');
    bus.register(0x70, 2, { read() { throw new Error('boom'); }, write() {} }, 'rtc');
    expect(() => bus.read(0x71, new Uint8Array(1))).toThrow(/pio read at 0x71 \(rtc\) failed: boom/);
  });

  it('unregisters by base', () => {
    const bus = new Bus('pio');
    bus.register(0x70, 2, new Recorder(), 'rtc');
    expect(bus.unregister(0x71)).toBe(false);
    expect(bus.unregister(0x70)).toBe(true);
    expect(bus.read(0x70, new Uint8Array(1))).toBe(false);
  });

  it('finds the right device among many (binary search)', () => {
    const bus = new Bus('pio');
    const devs: Recorder[] = [];
    for (let i = 0; i < 100; i++) {
      const d = new Recorder();
      devs.push(d);
      bus.register(0x1000 + i * 0x10, 8, d, `d${i}`);
    }
    for (let i = 0; i < 100; i++) bus.write(0x1000 + i * 0x10 + 7, Uint8Array.of(i));
    devs.forEach((d, i) => expect(d.writes).toEqual([[7, [i]]]));
    expect(bus.read(0x1000 + 5 * 0x10 + 8, new Uint8Array(1))).toBe(false); // the gap after d5
  });
});

describe('dispatchPio', () => {
  it('repeats string I/O on the same port, one element at a time', () => {
    const bus = new Bus('pio');
    const dev = new Recorder();
    bus.register(0x3f8, 8, dev, 'uart');
    dispatchPio(bus, { port: 0x3f8, size: 1, count: 3, isWrite: true, data: Uint8Array.of(1, 2, 3) });
    expect(dev.writes).toEqual([[0, [1]], [0, [2]], [0, [3]]]);
    const data = new Uint8Array(4);
    dispatchPio(bus, { port: 0x3fa, size: 2, count: 2, isWrite: false, data });
    expect([...data]).toEqual([2, 3, 2, 3]);
  });

  it('rejects a data buffer shorter than size x count', () => {
    const bus = new Bus('pio');
    expect(() => dispatchPio(bus, { port: 0x80, size: 4, count: 2, isWrite: true, data: new Uint8Array(4) })).toThrow(/4 data bytes/);
  });
});
