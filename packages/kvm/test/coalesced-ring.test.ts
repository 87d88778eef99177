// CoalescedRing against a ring written the way KVM's coalesced_mmio_write does (virt/kvm/coalesced_mmio.c):
// the entry first, then `last` advanced modulo KVM_COALESCED_MMIO_MAX; one slot always stays free.
import { describe, expect, it } from 'vitest';
import { layout } from '@hype/kvm-sys';
import { CoalescedRing } from '../src/coalesced-ring.js';

const PAGE = 4096;
const RING = layout.kvm_coalesced_mmio_ring;
const ENTRY = layout.kvm_coalesced_mmio;
/** KVM_COALESCED_MMIO_MAX with 4 KiB pages. */
const MAX = Math.floor((PAGE - RING.size) / ENTRY.size);

/** A fake vCPU mmap (kvm_run, PIO page, ring page) and a KVM-side writer. */
function fakeKvm(pageOffset = 2) {
  const area = new Uint8Array(3 * PAGE);
  const view = new DataView(area.buffer, pageOffset * PAGE, PAGE);
  return {
    area,
    /** Appends like KVM; false when full (KVM would exit instead). */
    write(addr: number, data: number[], pio = true): boolean {
      const first = view.getUint32(RING.first, true);
      const last = view.getUint32(RING.last, true);
      if ((last + 1) % MAX === first) return false;
      const at = RING.coalesced_mmio + last * ENTRY.size;
      view.setBigUint64(at + ENTRY.phys_addr, BigInt(addr), true);
      view.setUint32(at + ENTRY.len, data.length, true);
      view.setUint32(at + ENTRY.pio, pio ? 1 : 0, true);
      data.forEach((b, i) => view.setUint8(at + ENTRY.data + i, b));
      view.setUint32(RING.last, (last + 1) % MAX, true);
      return true;
    },
    setIndices(first: number, last: number) {
      view.setUint32(RING.first, first, true);
      view.setUint32(RING.last, last, true);
    },
    first: () => view.getUint32(RING.first, true),
  };
}

const collect = (ring: CoalescedRing) => {
  const seen: [number, number[], boolean][] = [];
  const n = ring.drain((addr, data, pio) => seen.push([addr, [...data], pio]));
  return { n, seen };
};

describe('CoalescedRing', () => {
  it('has KVM_COALESCED_MMIO_MAX entries for a 4 KiB page', () => {
    expect(new CoalescedRing(fakeKvm().area, 2).capacity).toBe(170);
  });

  it('hands out the writes in order, with address, data and kind, and frees their slots', () => {
    const kvm = fakeKvm();
    const ring = new CoalescedRing(kvm.area, 2);
    expect(ring.pending).toBe(false);
    expect(collect(ring).n).toBe(0);
    kvm.write(0x3f8, [0x41]);
    kvm.write(0x3f8, [0x42]);
    kvm.write(0xfee0_0000, [1, 2, 3, 4], false);
    expect(ring.pending).toBe(true);
    expect(collect(ring)).toEqual({
      n: 3,
      seen: [
        [0x3f8, [0x41], true],
        [0x3f8, [0x42], true],
        [0xfee0_0000, [1, 2, 3, 4], false],
      ],
    });
    expect(kvm.first()).toBe(3);
    expect(ring.pending).toBe(false);
    expect(ring.delivered).toBe(3);
  });

  it('wraps around, and a full ring (KVM exits instead) drains completely in one call', () => {
    const kvm = fakeKvm();
    const ring = new CoalescedRing(kvm.area, 2);
    kvm.setIndices(MAX - 5, MAX - 5);
    let written = 0;
    while (kvm.write(0x3f8, [written & 0xff])) written++;
    expect(written).toBe(MAX - 1);
    const { n, seen } = collect(ring);
    expect(n).toBe(MAX - 1);
    expect(seen.map(([, data]) => data[0])).toEqual(Array.from({ length: MAX - 1 }, (_, i) => i & 0xff));
    expect(kvm.first()).toBe((MAX - 5 + MAX - 1) % MAX);
  });

  it('consumes the entry a visitor throws on, and keeps the rest', () => {
    const kvm = fakeKvm();
    const ring = new CoalescedRing(kvm.area, 2);
    for (const b of [1, 2, 3]) kvm.write(0x3f8, [b]);
    expect(() => ring.drain((_, data) => {
      if (data[0] === 2) throw new Error('device failed');
    })).toThrow('device failed');
    expect(kvm.first()).toBe(2);
    expect(collect(ring).seen).toEqual([[0x3f8, [3], true]]);
  });

  it('refuses indices outside the ring and a mapping without the page', () => {
    const kvm = fakeKvm();
    kvm.setIndices(0, MAX + 3);
    expect(() => new CoalescedRing(kvm.area, 2).drain(() => {})).toThrow(/outside its 170 entries/);
    expect(() => new CoalescedRing(new Uint8Array(2 * PAGE), 2)).toThrow(/has no page 2/);
    expect(() => new CoalescedRing(kvm.area, 0)).toThrow(RangeError);
  });

  it('clamps a length beyond the 8 data bytes', () => {
    const kvm = fakeKvm();
    kvm.write(0x10, [1, 2, 3, 4, 5, 6, 7, 8]);
    new DataView(kvm.area.buffer, 2 * PAGE).setUint32(RING.coalesced_mmio + ENTRY.len, 999, true);
    expect(collect(new CoalescedRing(kvm.area, 2)).seen[0][1]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
