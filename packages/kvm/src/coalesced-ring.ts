import { layout } from '@hype/kvm-sys';

const RING = layout.kvm_coalesced_mmio_ring;
const ENTRY = layout.kvm_coalesced_mmio;
/** Widest access KVM coalesces (`data[8]`). */
const MAX_ENTRY_LEN = 8;

/** Called for each coalesced write, oldest first. `data` is a view into the ring, valid only during the call. */
export type CoalescedWriteVisitor = (addr: number, data: Uint8Array, pio: boolean) => void;

/**
 * The ring KVM fills with guest writes to coalesced zones (`Vm.coalescedZone`) instead of exiting for
 * each: one page of every vCPU's mmap, shared by the whole VM (`Vm.coalescedRing()`). KVM appends at
 * `last`; the consumer (one thread: this object's caller) hands entries `first..last-1` out and advances
 * `first`. A full ring makes KVM exit for the write as usual, so nothing is ever lost, only delivered late:
 * a consumer keeps order by draining before it handles any exit.
 *
 * The page is mmap'd, not a SharedArrayBuffer: `last` is read with Atomics.load and `first` published with
 * Atomics.store on an aligned Int32Array (V8 compiles them to plain aligned 32-bit accesses and a locked
 * store on x86-64, the only target), and KVM writes an entry before it moves `last` (smp_wmb).
 */
export class CoalescedRing {
  readonly #bytes: Uint8Array;
  readonly #words: Int32Array;
  readonly #base: number;
  /** Entries the ring holds (KVM_COALESCED_MMIO_MAX for the page size). */
  readonly capacity: number;
  #delivered = 0;

  /**
   * `area`: a vCPU's whole mmap'd kvm_run area (`Vcpu.run.bytes`); `pageOffset`: what
   * KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO) answered (2 on x86).
   */
  constructor(area: Uint8Array, pageOffset: number, pageSize = 4096) {
    if (!Number.isInteger(pageOffset) || pageOffset < 1) throw new RangeError(`CoalescedRing: page offset ${pageOffset} must be a positive integer`);
    const base = area.byteOffset + pageOffset * pageSize;
    if (base + pageSize > area.byteOffset + area.byteLength) {
      throw new RangeError(`CoalescedRing: the vCPU mmap (${area.byteLength} bytes) has no page ${pageOffset}`);
    }
    this.#bytes = new Uint8Array(area.buffer, base, pageSize);
    this.#words = new Int32Array(area.buffer, base, 2);
    this.#base = base;
    this.capacity = Math.floor((pageSize - RING.size) / ENTRY.size);
  }

  /** Writes handed out so far. */
  get delivered(): number {
    return this.#delivered;
  }

  /** Whether KVM has appended writes not yet drained (false once the vCPU's mapping is closed). */
  get pending(): boolean {
    if (this.#bytes.byteLength === 0) return false;
    return Atomics.load(this.#words, 1) !== Atomics.load(this.#words, 0);
  }

  /**
   * Hands every pending write to `visit`, oldest first, and frees its slot. Returns how many. At most one
   * ring's worth per call, so a guest writing while this runs cannot keep it going. If `visit` throws, the
   * entries before the failing one stay consumed and the failing one is consumed too (it would throw again).
   */
  drain(visit: CoalescedWriteVisitor): number {
    if (this.#bytes.byteLength === 0) return 0; // the mapping is closed
    let first = Atomics.load(this.#words, 0);
    const last = Atomics.load(this.#words, 1);
    if (first === last) return 0;
    if (first < 0 || first >= this.capacity || last < 0 || last >= this.capacity) {
      throw new Error(`coalesced MMIO ring: first ${first} / last ${last} outside its ${this.capacity} entries`);
    }
    const view = new DataView(this.#bytes.buffer, this.#base, this.#bytes.byteLength);
    let count = 0;
    try {
      while (first !== last) {
        const at = RING.coalesced_mmio + first * ENTRY.size;
        const addr = Number(view.getBigUint64(at + ENTRY.phys_addr, true));
        const len = Math.min(view.getUint32(at + ENTRY.len, true), MAX_ENTRY_LEN);
        const pio = view.getUint32(at + ENTRY.pio, true) !== 0;
        first = (first + 1) % this.capacity;
        count++;
        visit(addr, this.#bytes.subarray(at + ENTRY.data, at + ENTRY.data + len), pio);
      }
    } finally {
      if (this.#bytes.byteLength !== 0) Atomics.store(this.#words, 0, first);
      this.#delivered += count;
    }
    return count;
  }
}
