// A minimal driver-side view of a split virtqueue over a plain Uint8Array, for tests: writes descriptors
// and the available ring the way a guest would, and reads back the used ring.
import { Avail, Desc, Used } from '../src/ring-layout.js';

export interface TestLayout {
  size: number;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
}

export interface DescSpec {
  addr: number | bigint;
  len: number;
  flags?: number;
  next?: number;
}

export class TestDriver {
  private availIdx = 0;
  readonly dv: DataView;

  constructor(
    readonly ram: Uint8Array,
    readonly layout: TestLayout,
  ) {
    this.dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  }

  /** Write descriptor `index` of the table at `tableAddr` (default: the queue's own table). */
  setDesc(index: number, d: DescSpec, tableAddr = this.layout.descAddr): void {
    const base = tableAddr + index * Desc.SIZE;
    this.dv.setBigUint64(base + Desc.ADDR, BigInt(d.addr), true);
    this.dv.setUint32(base + Desc.LEN, d.len, true);
    this.dv.setUint16(base + Desc.FLAGS, d.flags ?? 0, true);
    this.dv.setUint16(base + Desc.NEXT, d.next ?? 0, true);
  }

  /** Write a whole chain at consecutive indices starting at `first`, linking them with NEXT. */
  setChain(first: number, descs: DescSpec[], tableAddr = this.layout.descAddr): void {
    descs.forEach((d, i) => {
      const last = i === descs.length - 1;
      const flags = (d.flags ?? 0) | (last ? 0 : 1);
      this.setDesc(first + i, { ...d, flags, next: last ? 0 : d.next ?? first + i + 1 }, tableAddr);
    });
  }

  /** Make `head` available (avail.ring[idx % size] = head; avail.idx++). */
  publish(head: number): void {
    const slot = this.availIdx % this.layout.size;
    this.dv.setUint16(this.layout.availAddr + Avail.RING + 2 * slot, head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(this.layout.availAddr + Avail.IDX, this.availIdx, true);
  }

  setAvailIdx(value: number): void {
    this.availIdx = value & 0xffff;
    this.dv.setUint16(this.layout.availAddr + Avail.IDX, this.availIdx, true);
  }

  setAvailFlags(value: number): void {
    this.dv.setUint16(this.layout.availAddr + Avail.FLAGS, value, true);
  }

  setUsedEvent(value: number): void {
    this.dv.setUint16(this.layout.availAddr + Avail.usedEventOffset(this.layout.size), value, true);
  }

  get usedIdx(): number {
    return this.dv.getUint16(this.layout.usedAddr + Used.IDX, true);
  }

  get usedFlags(): number {
    return this.dv.getUint16(this.layout.usedAddr + Used.FLAGS, true);
  }

  get availEvent(): number {
    return this.dv.getUint16(this.layout.usedAddr + Used.availEventOffset(this.layout.size), true);
  }

  /** used.ring[i % size] */
  used(i: number): { id: number; len: number } {
    const base = this.layout.usedAddr + Used.RING + Used.ELEM_SIZE * (i % this.layout.size);
    return { id: this.dv.getUint32(base + Used.ELEM_ID, true), len: this.dv.getUint32(base + Used.ELEM_LEN, true) };
  }
}

/** The layout most tests use: a 16-entry queue in the first pages of a 64 KiB RAM. */
export const smallLayout: TestLayout = { size: 16, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000 };
/** Data buffers in tests live from here on. */
export const DATA = 0x8000;
