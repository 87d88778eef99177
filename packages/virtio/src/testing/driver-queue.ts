import { ArrayGuestMemory, type GuestMemory, guestView } from '../memory.js';
import type { QueueLayout } from '../queue.js';
import { Avail, Desc, DescFlag, RingAlign, Used } from '../ring-layout.js';

/** One descriptor exactly as written into a table (any values, including malformed ones). */
export interface DescSpec {
  /** Guest-physical address; a bigint for values a number cannot hold (up to 2^64 - 1). */
  readonly addr: number | bigint;
  readonly len: number;
  /** VIRTQ_DESC_F_* bits (default 0). */
  readonly flags?: number;
  readonly next?: number;
}

/** One buffer of a chain to post: where it is, how long, and who writes it. */
export interface BufSpec {
  readonly addr: number;
  readonly len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE) rather than device-readable. */
  readonly writable: boolean;
}

/** One used-ring element as the device wrote it. */
export interface UsedElem {
  /** Head descriptor index of the chain. */
  readonly id: number;
  /** Bytes the device says it wrote into the chain's device-writable buffers. */
  readonly len: number;
}

/** The buffers of each chain taken off a used ring with `takeUsed` (keyed by the returned element). */
const completedChains = new WeakMap<UsedElem, readonly BufSpec[]>();

/** The buffers of the chain a used element (from `takeUsed`/`waitUsed`) completed, if it was posted by a harness. */
export function chainBuffersOf(elem: UsedElem): readonly BufSpec[] | undefined {
  return completedChains.get(elem);
}

/**
 * The bytes the device wrote for a used element: the first `elem.len` bytes of the chain's
 * device-writable buffers, in chain order, copied out of guest memory. Throws if the element was not
 * taken from a harness queue, or if the device claims more than the chain's writable capacity (a device
 * bug: the virtio 1.2 §2.7.8.1 "len" is at most the writable total).
 */
export function writtenBytes(memory: GuestMemory, elem: UsedElem): Uint8Array {
  const buffers = completedChains.get(elem);
  if (buffers === undefined) throw new Error(`used element ${JSON.stringify(elem)} was not taken from a harness queue`);
  const writable = buffers.filter((b) => b.writable);
  const capacity = writable.reduce((n, b) => n + b.len, 0);
  if (elem.len > capacity) throw new Error(`device reported ${elem.len} bytes written into a chain with ${capacity} writable bytes`);
  const out = new Uint8Array(elem.len);
  let done = 0;
  for (const b of writable) {
    if (done === out.length) break;
    const take = Math.min(b.len, out.length - done);
    const view = guestView(memory, b.addr, take);
    if (view === undefined) throw new Error(`writable buffer [0x${b.addr.toString(16)}, +${take}) is not guest RAM`);
    out.set(view, done);
    done += take;
  }
  return out;
}

const alignUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Page size the default ring placement aligns the used ring and the end to (like legacy vring_init). */
export const RING_PAGE = 4096;

/**
 * Where to put a queue of `size` entries starting at `base` (16-byte aligned): descriptor table,
 * available ring right after it, used ring on the next page boundary. `end` is the first page
 * boundary after the used ring.
 */
export function queueLayoutAt(base: number, size: number): { layout: QueueLayout; end: number } {
  const descAddr = alignUp(base, RingAlign.DESC);
  const availAddr = descAddr + Desc.SIZE * size;
  const usedAddr = alignUp(availAddr + Avail.size(size), RING_PAGE);
  return { layout: { size, descAddr, availAddr, usedAddr }, end: alignUp(usedAddr + Used.size(size), RING_PAGE) };
}

/**
 * The driver side of one split virtqueue (virtio 1.2 §2.7) over guest memory, the way a guest's
 * virtio_ring writes it: descriptors, the available ring and its index, and reading the used ring.
 *
 * Two levels:
 * - raw (`setDesc`, `setChain`, `setAvailRing`, `publish`, `setAvailIdx`, ...): write any value
 *   anywhere in the rings, for hostile-guest tests. Nothing is checked.
 * - managed (`addChain`, `addIndirectChain`, `takeUsed`): descriptors come from a free list and go
 *   back to it when the device returns the chain, like Linux's virtqueue_add/virtqueue_get_buf.
 *
 * The constructor writes nothing; `reset()` zeroes the three ring areas and the driver's indices (what
 * a driver does before handing the queue to a freshly reset device). Throws only on harness misuse
 * (ring fields outside guest memory, out of descriptors).
 */
export class DriverQueue {
  readonly memory: GuestMemory;
  readonly layout: QueueLayout;
  private availShadow = 0;
  private lastUsed = 0;
  private free: number[];
  private readonly posted = new Map<number, { descs: number[]; buffers: readonly BufSpec[] }>();

  constructor(memory: GuestMemory | Uint8Array, layout: QueueLayout) {
    this.memory = memory instanceof Uint8Array ? new ArrayGuestMemory(memory) : memory;
    this.layout = { size: layout.size, descAddr: layout.descAddr, availAddr: layout.availAddr, usedAddr: layout.usedAddr };
    this.free = this.allDescriptors();
  }

  get size(): number {
    return this.layout.size;
  }

  private allDescriptors(): number[] {
    return Array.from({ length: this.size }, (_, i) => i);
  }

  private dv(gpa: number, len: number, what: string): DataView {
    const v = guestView(this.memory, gpa, len);
    if (v === undefined) throw new Error(`DriverQueue: ${what} [0x${gpa.toString(16)}, +${len}) is not guest RAM`);
    return new DataView(v.buffer, v.byteOffset, v.byteLength);
  }

  // ---- raw access --------------------------------------------------------------------------------

  /** Write descriptor `index` of the table at `tableAddr` (default: the queue's own table). */
  setDesc(index: number, d: DescSpec, tableAddr = this.layout.descAddr): void {
    const dv = this.dv(tableAddr + index * Desc.SIZE, Desc.SIZE, `descriptor ${index}`);
    dv.setBigUint64(Desc.ADDR, BigInt.asUintN(64, BigInt(d.addr)), true);
    dv.setUint32(Desc.LEN, d.len >>> 0, true);
    dv.setUint16(Desc.FLAGS, (d.flags ?? 0) & 0xffff, true);
    dv.setUint16(Desc.NEXT, (d.next ?? 0) & 0xffff, true);
  }

  /** Read descriptor `index` of the table at `tableAddr` back. */
  getDesc(index: number, tableAddr = this.layout.descAddr): { addr: bigint; len: number; flags: number; next: number } {
    const dv = this.dv(tableAddr + index * Desc.SIZE, Desc.SIZE, `descriptor ${index}`);
    return { addr: dv.getBigUint64(Desc.ADDR, true), len: dv.getUint32(Desc.LEN, true), flags: dv.getUint16(Desc.FLAGS, true), next: dv.getUint16(Desc.NEXT, true) };
  }

  /**
   * Write `descs` at consecutive indices from `first`, linking each to the next with NEXT (an explicit
   * `next` in a spec wins over first + i + 1; the last one gets no NEXT). Does not publish.
   */
  setChain(first: number, descs: readonly DescSpec[], tableAddr = this.layout.descAddr): void {
    descs.forEach((d, i) => {
      const last = i === descs.length - 1;
      const flags = (d.flags ?? 0) | (last ? 0 : DescFlag.NEXT);
      this.setDesc(first + i, { ...d, flags, next: last ? 0 : (d.next ?? first + i + 1) }, tableAddr);
    });
  }

  /** avail.ring[slot] = head, nothing else (slot is used as given: an index into the ring). */
  setAvailRing(slot: number, head: number): void {
    this.dv(this.layout.availAddr + Avail.RING + Avail.ENTRY_SIZE * slot, 2, `avail.ring[${slot}]`).setUint16(0, head & 0xffff, true);
  }

  /** Make `head` available: avail.ring[idx % size] = head, then avail.idx + 1 (the driver's own count). */
  publish(head: number): void {
    this.setAvailRing(this.availShadow % this.size, head);
    this.setAvailIdx(this.availShadow + 1);
  }

  /** Write avail.idx (and make it the driver's count from now on). */
  setAvailIdx(value: number): void {
    this.availShadow = value & 0xffff;
    this.dv(this.layout.availAddr + Avail.IDX, 2, 'avail.idx').setUint16(0, this.availShadow, true);
  }

  /** The driver's avail.idx (what it last wrote). */
  get availIdx(): number {
    return this.availShadow;
  }

  setAvailFlags(value: number): void {
    this.dv(this.layout.availAddr + Avail.FLAGS, 2, 'avail.flags').setUint16(0, value & 0xffff, true);
  }

  /** used_event (VIRTIO_F_EVENT_IDX): interrupt me once used.idx passes this. */
  setUsedEvent(value: number): void {
    this.dv(this.layout.availAddr + Avail.usedEventOffset(this.size), 2, 'used_event').setUint16(0, value & 0xffff, true);
  }

  get usedIdx(): number {
    return this.dv(this.layout.usedAddr + Used.IDX, 2, 'used.idx').getUint16(0, true);
  }

  get usedFlags(): number {
    return this.dv(this.layout.usedAddr + Used.FLAGS, 2, 'used.flags').getUint16(0, true);
  }

  /** avail_event (VIRTIO_F_EVENT_IDX): the device wants a notification once avail.idx passes this. */
  get availEvent(): number {
    return this.dv(this.layout.usedAddr + Used.availEventOffset(this.size), 2, 'avail_event').getUint16(0, true);
  }

  /** used.ring[i % size]. */
  used(i: number): UsedElem {
    const dv = this.dv(this.layout.usedAddr + Used.RING + Used.ELEM_SIZE * (i % this.size), Used.ELEM_SIZE, `used.ring[${i % this.size}]`);
    return { id: dv.getUint32(Used.ELEM_ID, true), len: dv.getUint32(Used.ELEM_LEN, true) };
  }

  // ---- managed chains ----------------------------------------------------------------------------

  /** Descriptors of the queue's own table not held by a posted chain. */
  get freeDescriptors(): number {
    return this.free.length;
  }

  /** Chains posted with addChain/addIndirectChain and not yet taken back with takeUsed. */
  get outstanding(): number {
    return this.posted.size;
  }

  /**
   * Post a direct chain: one descriptor per buffer from the free list (in order), linked with NEXT,
   * WRITE on the writable ones; then publish its head. Returns the head. Does not notify.
   * Buffers are written as given: a readable buffer after a writable one is the test's choice.
   */
  addChain(buffers: readonly BufSpec[]): number {
    if (buffers.length === 0) throw new Error('DriverQueue: a chain needs at least one buffer');
    if (buffers.length > this.free.length) throw new Error(`DriverQueue: ${buffers.length} descriptors wanted, ${this.free.length} free`);
    const descs = this.free.splice(0, buffers.length);
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      this.setDesc(descs[i], {
        addr: b.addr,
        len: b.len,
        flags: (last ? 0 : DescFlag.NEXT) | (b.writable ? DescFlag.WRITE : 0),
        next: last ? 0 : descs[i + 1],
      });
    });
    this.posted.set(descs[0], { descs, buffers: [...buffers] });
    this.publish(descs[0]);
    return descs[0];
  }

  /**
   * Post a chain through one indirect table (VIRTIO_F_INDIRECT_DESC) written at `tableAddr` (16-byte
   * aligned, 16 bytes per buffer): one descriptor of the queue's table points at it. Returns the head.
   */
  addIndirectChain(buffers: readonly BufSpec[], tableAddr: number): number {
    if (buffers.length === 0) throw new Error('DriverQueue: a chain needs at least one buffer');
    if (this.free.length === 0) throw new Error('DriverQueue: no free descriptor');
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      this.setDesc(
        i,
        { addr: b.addr, len: b.len, flags: (last ? 0 : DescFlag.NEXT) | (b.writable ? DescFlag.WRITE : 0), next: last ? 0 : i + 1 },
        tableAddr,
      );
    });
    const [head] = this.free.splice(0, 1);
    this.setDesc(head, { addr: tableAddr, len: buffers.length * Desc.SIZE, flags: DescFlag.INDIRECT });
    this.posted.set(head, { descs: [head], buffers: [...buffers] });
    this.publish(head);
    return head;
  }

  /** Used elements the device added that takeUsed has not returned yet. */
  get pendingUsed(): number {
    return (this.usedIdx - this.lastUsed) & 0xffff;
  }

  /**
   * The used elements added since the last call, in ring order. The descriptors of chains posted with
   * addChain/addIndirectChain go back to the free list, and `writtenBytes(elem)` can read what the
   * device wrote. Then, like Linux's virtqueue_enable_cb, used_event is set to ask for an interrupt at
   * the next used element (only read by the device with VIRTIO_F_EVENT_IDX).
   */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.usedIdx;
    while (this.lastUsed !== idx) {
      const elem = this.used(this.lastUsed);
      const chain = this.posted.get(elem.id);
      if (chain !== undefined) {
        this.free.push(...chain.descs);
        this.posted.delete(elem.id);
        completedChains.set(elem, chain.buffers);
      }
      out.push(elem);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    this.setUsedEvent(this.lastUsed);
    return out;
  }

  /** What the device wrote for `elem` (see the module function `writtenBytes`). */
  writtenBytes(elem: UsedElem): Uint8Array {
    return writtenBytes(this.memory, elem);
  }

  /**
   * Start over, as a driver does when it sets the queue up again after a device reset: zero the
   * descriptor table, the available ring and the used ring, forget posted chains and reset the
   * driver's indices.
   */
  reset(): void {
    const { descAddr, availAddr, usedAddr } = this.layout;
    guestView(this.memory, descAddr, Desc.SIZE * this.size)?.fill(0);
    guestView(this.memory, availAddr, Avail.size(this.size))?.fill(0);
    guestView(this.memory, usedAddr, Used.size(this.size))?.fill(0);
    this.availShadow = 0;
    this.lastUsed = 0;
    this.free = this.allDescriptors();
    this.posted.clear();
  }
}
