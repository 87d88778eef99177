// A test "guest driver" for a virtio block device behind the real virtio-mmio transport: does the
// register-level init sequence, owns a split virtqueue in a Uint8Array guest RAM, submits descriptor
// chains and reads the used ring, the way Linux's virtio_mmio + virtio_ring do.
import { ArrayGuestMemory, Avail, Desc, MmioReg, MmioTransport, Status, Used, type VirtioDevice } from '@hype/virtio';

export interface BufSpec {
  addr: number;
  len: number;
  writable: boolean;
}

export interface DriverOptions {
  ramSize?: number;
  queueSize?: number;
  /** Features the driver accepts, as a mask over the offer. Default: everything offered. */
  acceptMask?: bigint;
}

export class BlkTestDriver {
  readonly ram: Uint8Array;
  readonly memory: ArrayGuestMemory;
  readonly transport: MmioTransport;
  readonly dv: DataView;
  readonly warnings: string[] = [];
  interrupts = 0;
  readonly queueSize: number;
  readonly descAddr = 0x1000;
  readonly availAddr: number;
  readonly usedAddr: number;
  private heapNext: number;
  private availIdx = 0;
  private lastUsed = 0;
  private freeDescs: number[];
  private chainOf = new Map<number, number[]>();
  negotiated = 0n;
  private readonly acceptMask: bigint;

  constructor(
    readonly device: VirtioDevice,
    opts: DriverOptions = {},
  ) {
    this.ram = new Uint8Array(opts.ramSize ?? 4 << 20);
    this.dv = new DataView(this.ram.buffer);
    this.memory = new ArrayGuestMemory(this.ram);
    this.queueSize = opts.queueSize ?? 64;
    this.availAddr = this.descAddr + Desc.SIZE * this.queueSize;
    this.usedAddr = (this.availAddr + Avail.size(this.queueSize) + 4095) & ~4095;
    this.heapNext = (this.usedAddr + Used.size(this.queueSize) + 4095) & ~4095;
    this.freeDescs = Array.from({ length: this.queueSize }, (_, i) => i);
    this.transport = new MmioTransport(device, {
      memory: this.memory,
      interrupt: (asserted) => {
        if (asserted) this.interrupts++;
      },
      log: { warn: (m) => this.warnings.push(m) },
    });
    this.acceptMask = opts.acceptMask ?? ~0n;
  }

  reg(offset: number): number {
    return this.transport.read(offset, 4);
  }

  setReg(offset: number, value: number): void {
    this.transport.write(offset, 4, value);
  }

  offeredFeatures(): bigint {
    this.setReg(MmioReg.DEVICE_FEATURES_SEL, 0);
    const lo = BigInt(this.reg(MmioReg.DEVICE_FEATURES));
    this.setReg(MmioReg.DEVICE_FEATURES_SEL, 1);
    const hi = BigInt(this.reg(MmioReg.DEVICE_FEATURES));
    return (hi << 32n) | lo;
  }

  /** The Linux init sequence; returns the negotiated features. Throws if the device refuses. */
  init(): bigint {
    this.setReg(MmioReg.STATUS, 0);
    this.setReg(MmioReg.STATUS, Status.ACKNOWLEDGE);
    this.setReg(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    const features = this.offeredFeatures() & this.acceptMask;
    this.setReg(MmioReg.DRIVER_FEATURES_SEL, 0);
    this.setReg(MmioReg.DRIVER_FEATURES, Number(features & 0xffff_ffffn));
    this.setReg(MmioReg.DRIVER_FEATURES_SEL, 1);
    this.setReg(MmioReg.DRIVER_FEATURES, Number(features >> 32n));
    this.setReg(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    if ((this.reg(MmioReg.STATUS) & Status.FEATURES_OK) === 0) throw new Error(`FEATURES_OK refused: ${this.warnings.join('; ')}`);
    this.ram.fill(0, this.descAddr, this.heapNext);
    this.setReg(MmioReg.QUEUE_SEL, 0);
    if (this.reg(MmioReg.QUEUE_NUM_MAX) < this.queueSize) throw new Error('queue too small');
    this.setReg(MmioReg.QUEUE_NUM, this.queueSize);
    this.setReg(MmioReg.QUEUE_DESC_LOW, this.descAddr);
    this.setReg(MmioReg.QUEUE_DESC_HIGH, 0);
    this.setReg(MmioReg.QUEUE_DRIVER_LOW, this.availAddr);
    this.setReg(MmioReg.QUEUE_DRIVER_HIGH, 0);
    this.setReg(MmioReg.QUEUE_DEVICE_LOW, this.usedAddr);
    this.setReg(MmioReg.QUEUE_DEVICE_HIGH, 0);
    this.setReg(MmioReg.QUEUE_READY, 1);
    this.setReg(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    this.availIdx = 0;
    this.lastUsed = 0;
    this.freeDescs = Array.from({ length: this.queueSize }, (_, i) => i);
    this.chainOf.clear();
    this.negotiated = features;
    return features;
  }

  /** Driver-side device reset (Status = 0). */
  reset(): void {
    this.setReg(MmioReg.STATUS, 0);
  }

  configU8(offset: number): number {
    return this.transport.read(MmioReg.CONFIG + offset, 1);
  }
  configU16(offset: number): number {
    return this.transport.read(MmioReg.CONFIG + offset, 2);
  }
  configU32(offset: number): number {
    return this.transport.read(MmioReg.CONFIG + offset, 4);
  }
  configU64(offset: number): bigint {
    return BigInt(this.configU32(offset)) | (BigInt(this.configU32(offset + 4)) << 32n);
  }

  /** Allocate guest RAM (never reused) and optionally fill it. */
  alloc(len: number, fill?: Uint8Array | number): number {
    const addr = this.heapNext;
    this.heapNext = (this.heapNext + Math.max(len, 1) + 15) & ~15;
    if (this.heapNext > this.ram.length) throw new Error('test RAM exhausted');
    if (fill instanceof Uint8Array) this.ram.set(fill, addr);
    else if (fill !== undefined) this.ram.fill(fill, addr, addr + len);
    return addr;
  }

  bytes(addr: number, len: number): Uint8Array {
    return this.ram.slice(addr, addr + len);
  }

  /** Put a chain in the descriptor table and make it available; returns its head. */
  submit(bufs: BufSpec[], notify = true): number {
    if (bufs.length > this.freeDescs.length) throw new Error('out of descriptors');
    const idx = this.freeDescs.splice(0, bufs.length);
    bufs.forEach((b, i) => {
      const base = this.descAddr + idx[i] * Desc.SIZE;
      const last = i === bufs.length - 1;
      this.dv.setBigUint64(base + Desc.ADDR, BigInt(b.addr), true);
      this.dv.setUint32(base + Desc.LEN, b.len, true);
      this.dv.setUint16(base + Desc.FLAGS, (last ? 0 : 1) | (b.writable ? 2 : 0), true);
      this.dv.setUint16(base + Desc.NEXT, last ? 0 : idx[i + 1], true);
    });
    const head = idx[0];
    this.chainOf.set(head, idx);
    this.dv.setUint16(this.availAddr + Avail.RING + 2 * (this.availIdx % this.queueSize), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(this.availAddr + Avail.IDX, this.availIdx, true);
    if (notify) this.notify();
    return head;
  }

  /** A chain through one indirect table (VIRTIO_F_INDIRECT_DESC). */
  submitIndirect(bufs: BufSpec[]): number {
    const table = this.alloc(bufs.length * Desc.SIZE);
    bufs.forEach((b, i) => {
      const base = table + i * Desc.SIZE;
      const last = i === bufs.length - 1;
      this.dv.setBigUint64(base + Desc.ADDR, BigInt(b.addr), true);
      this.dv.setUint32(base + Desc.LEN, b.len, true);
      this.dv.setUint16(base + Desc.FLAGS, (last ? 0 : 1) | (b.writable ? 2 : 0), true);
      this.dv.setUint16(base + Desc.NEXT, last ? 0 : i + 1, true);
    });
    const [d] = this.freeDescs.splice(0, 1);
    const base = this.descAddr + d * Desc.SIZE;
    this.dv.setBigUint64(base + Desc.ADDR, BigInt(table), true);
    this.dv.setUint32(base + Desc.LEN, bufs.length * Desc.SIZE, true);
    this.dv.setUint16(base + Desc.FLAGS, 4, true);
    this.dv.setUint16(base + Desc.NEXT, 0, true);
    this.chainOf.set(d, [d]);
    this.dv.setUint16(this.availAddr + Avail.RING + 2 * (this.availIdx % this.queueSize), d, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(this.availAddr + Avail.IDX, this.availIdx, true);
    this.notify();
    return d;
  }

  notify(): void {
    this.setReg(MmioReg.QUEUE_NOTIFY, 0);
  }

  get usedIdx(): number {
    return this.dv.getUint16(this.usedAddr + Used.IDX, true);
  }

  /** Used elements added since the last call (their descriptors go back to the free list). */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const idx = this.usedIdx;
    while (this.lastUsed !== idx) {
      const base = this.usedAddr + Used.RING + Used.ELEM_SIZE * (this.lastUsed % this.queueSize);
      const id = this.dv.getUint32(base + Used.ELEM_ID, true);
      out.push({ id, len: this.dv.getUint32(base + Used.ELEM_LEN, true) });
      const descs = this.chainOf.get(id);
      if (descs) {
        this.freeDescs.push(...descs);
        this.chainOf.delete(id);
      }
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    // Like Linux's virtqueue_enable_cb: ask for an interrupt at the next used entry (EVENT_IDX).
    this.dv.setUint16(this.availAddr + Avail.usedEventOffset(this.queueSize), this.lastUsed, true);
    return out;
  }

  /** Wait (yielding to the event loop) until used.idx has advanced `n` past what takeUsed last saw. */
  async waitUsed(n: number, timeoutMs = 5000): Promise<{ id: number; len: number }[]> {
    const deadline = Date.now() + timeoutMs;
    while (((this.usedIdx - this.lastUsed) & 0xffff) < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} used entries (have ${(this.usedIdx - this.lastUsed) & 0xffff})`);
      await new Promise((r) => setImmediate(r));
    }
    return this.takeUsed();
  }
}
