import { describe, expect, it } from 'vitest';
import { GuestMemoryMap } from '../src/index.js';

function map() {
  const memory = new GuestMemoryMap();
  const low = { guestPhysAddr: 0, size: 0x10000, bytes: new Uint8Array(0x10000) };
  const high = { guestPhysAddr: 0x10000, size: 0x1000, bytes: new Uint8Array(0x1000) };
  const far = { guestPhysAddr: 0x1_0000_0000, size: 0x2000, bytes: new Uint8Array(0x2000) };
  memory.add(far);
  memory.add(low);
  memory.add(high);
  return { memory, low, high, far };
}

describe('GuestMemoryMap', () => {
  it('returns live views inside one region', () => {
    const { memory, low, far } = map();
    const view = memory.view(0x100, 4)!;
    view.set([1, 2, 3, 4]);
    expect([...low.bytes.subarray(0x100, 0x104)]).toEqual([1, 2, 3, 4]);
    expect(memory.view(0x1_0000_1ff0, 0x10)!.length).toBe(0x10);
    far.bytes[0x1ff0] = 9;
    expect(memory.view(0x1_0000_1ff0, 1)![0]).toBe(9);
    expect(memory.view(0xffff, 1)!.length).toBe(1);
    expect(memory.view(0x5000, 0)!.length).toBe(0);
    expect(memory.find(0x10800)?.guestPhysAddr).toBe(0x10000);
    expect(memory.find(0x11000)).toBeUndefined();
  });

  it('refuses ranges outside RAM or across two regions (even adjacent ones)', () => {
    const { memory } = map();
    expect(memory.view(0xfffe, 4)).toBeUndefined(); // low -> high boundary
    expect(memory.view(0x11000, 1)).toBeUndefined(); // hole
    expect(memory.view(0x1_0000_1fff, 2)).toBeUndefined(); // past the end
    expect(memory.view(-1, 1)).toBeUndefined();
    expect(memory.view(0, -1)).toBeUndefined();
    expect(memory.view(Number.NaN, 1)).toBeUndefined();
    expect(memory.view(0.5, 1)).toBeUndefined();
    expect(memory.view(2 ** 60, 1)).toBeUndefined();
  });

  it('refuses overlapping regions and forgets removed ones', () => {
    const { memory, high } = map();
    expect(() => memory.add({ guestPhysAddr: 0xf000, size: 0x2000, bytes: new Uint8Array(0x2000) })).toThrow(
      /overlaps \[0x0, 0x10000\)/,
    );
    memory.remove(high);
    expect(memory.view(0x10000, 1)).toBeUndefined();
    expect(memory.ranges.map((r) => r.guestPhysAddr)).toEqual([0, 0x1_0000_0000]);
  });

  it('gives nothing for a region whose memory was unmapped', () => {
    const memory = new GuestMemoryMap();
    memory.add({ guestPhysAddr: 0, size: 0x1000, bytes: new Uint8Array(0) });
    expect(memory.view(0, 1)).toBeUndefined();
  });
});
