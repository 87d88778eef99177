import { describe, expect, it } from 'vitest';
import { Bus } from '../src/bus.js';
import { DEBUG_PORT_BASE, DEBUG_PORT_COUNT, DebugPort, MAX_MARKERS, MARKER_INIT_STARTED } from '../src/devices/debug-port.js';

describe('DebugPort', () => {
  function setup() {
    const powerOffs: number[] = [];
    let t = 100;
    const dev = new DebugPort({ onPowerOff: (s) => powerOffs.push(s), now: () => (t += 5) });
    const bus = new Bus('pio');
    bus.register(DEBUG_PORT_BASE, DEBUG_PORT_COUNT, dev, 'hype-debug');
    return { dev, bus, powerOffs };
  }

  it('port 0xf4 requests power-off with the written status', () => {
    const { bus, powerOffs } = setup();
    bus.write(0xf4, Uint8Array.of(0));
    bus.write(0xf4, Uint8Array.of(3));
    expect(powerOffs).toEqual([0, 3]);
  });

  it('port 0xf5 records timestamped markers', () => {
    const { bus, dev, powerOffs } = setup();
    bus.write(0xf5, Uint8Array.of(MARKER_INIT_STARTED));
    bus.write(0xf5, Uint8Array.of(7));
    expect(dev.markers).toEqual([
      { value: 1, atMs: 105 },
      { value: 7, atMs: 110 },
    ]);
    expect(dev.firstMarker(MARKER_INIT_STARTED)?.atMs).toBe(105);
    expect(powerOffs).toEqual([]);
  });

  it('a wide write uses its low byte for the port it starts at', () => {
    const { bus, powerOffs, dev } = setup();
    bus.write(0xf4, Uint8Array.of(2, 9));
    expect(powerOffs).toEqual([2]);
    expect(dev.markers).toEqual([]);
  });

  it('keeps a bounded number of markers', () => {
    const { bus, dev } = setup();
    for (let i = 0; i < MAX_MARKERS + 10; i++) bus.write(0xf5, Uint8Array.of(i & 0xff));
    expect(dev.markers).toHaveLength(MAX_MARKERS);
  });

  it('reads as all-ones', () => {
    const { bus } = setup();
    const d = new Uint8Array(1);
    bus.read(0xf5, d);
    expect(d[0]).toBe(0xff);
  });

  it('uses performance.now() by default', () => {
    const dev = new DebugPort({ onPowerOff() {} });
    const before = performance.now();
    dev.write(1, Uint8Array.of(1));
    expect(dev.markers[0].atMs).toBeGreaterThanOrEqual(before);
  });
});
