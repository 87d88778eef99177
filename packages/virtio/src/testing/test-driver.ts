import type { VirtioDevice } from '../device.js';
import { Status } from '../features.js';
import { ArrayGuestMemory, guestView } from '../memory.js';
import { MmioInterrupt, MmioReg } from '../mmio-registers.js';
import { MmioTransport } from '../mmio.js';
import { Desc } from '../ring-layout.js';
import { BumpAllocator } from './allocator.js';
import { type BufSpec, DriverQueue, type UsedElem, queueLayoutAt, writtenBytes } from './driver-queue.js';
import { bringUp, readDeviceFeatures } from './mmio-sequence.js';

/** Queue size the harness uses when neither `queueSize` nor `queueSizes` says (capped by QueueNumMax). */
export const DEFAULT_TEST_QUEUE_SIZE = 64;
/** Guest RAM of a harness by default. */
export const DEFAULT_TEST_RAM_SIZE = 4 << 20;
/** Where the first queue's rings start; below it stays unused (address 0 is never a buffer). */
export const TEST_RINGS_BASE = 0x1000;

export interface VirtioTestDriverOptions {
  /** Guest RAM in bytes, at guest-physical 0 (default 4 MiB). */
  readonly ramSize?: number;
  /**
   * Size of every queue the driver enables (a power of two, at most the queue's QueueNumMax). Default:
   * min(QueueNumMax, 64) per queue.
   */
  readonly queueSize?: number;
  /**
   * Per-queue sizes; its length is the number of queues the driver enables (the first N; the rest stay
   * disabled). Default: every queue the device declares.
   */
  readonly queueSizes?: readonly number[];
  /** Features the driver accepts, as a mask over the offer (default: everything offered). */
  readonly acceptMask?: bigint;
  /** Transport options: offer VIRTIO_F_EVENT_IDX / VIRTIO_F_INDIRECT_DESC (both default true), VendorID. */
  readonly transport?: { readonly eventIdx?: boolean; readonly indirectDescriptors?: boolean; readonly vendorId?: number };
  /**
   * How `waitUsed` yields to the event loop between looks at the used ring. Default: `setImmediate`
   * where the runtime has it, else `setTimeout(0)`.
   */
  readonly yieldToEventLoop?: () => Promise<void>;
}

export interface SubmitOptions {
  /** Queue index (default 0). */
  readonly queue?: number;
  /** Write QueueNotify afterwards (default true). */
  readonly notify?: boolean;
}

function defaultYield(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => (immediate !== undefined ? immediate(resolve) : setTimeout(resolve, 0)));
}

/**
 * A guest driver for one virtio device, for tests: guest RAM as a `Uint8Array` (`ArrayGuestMemory` at
 * guest-physical 0), the device plugged into the real `MmioTransport`, Linux's bring-up sequence
 * (`init`), one `DriverQueue` per enabled queue laid out from `TEST_RINGS_BASE`, and a bump allocator
 * for buffer space after the rings. It counts interrupts and collects the transport's warnings.
 *
 * ```ts
 * const drv = new VirtioTestDriver(new MyDevice(), { queueSize: 16 });
 * drv.init();
 * const head = drv.submit([drv.readable(request), drv.writable(512)]);
 * const [used] = await drv.waitUsed(1);       // { id: head, len }
 * drv.writtenBytes(used);                     // what the device wrote
 * ```
 *
 * Everything here may throw on harness misuse (RAM exhausted, no free descriptors); nothing catches
 * what the device does: that goes through the transport, which logs and sets DEVICE_NEEDS_RESET.
 */
export class VirtioTestDriver {
  readonly ram: Uint8Array;
  readonly memory: ArrayGuestMemory;
  readonly transport: MmioTransport;
  /** Every warning the transport (and through it the device) logged, in order. */
  readonly warnings: string[] = [];
  /** Buffer space after the rings. */
  readonly allocator: BumpAllocator;
  /** The driver side of each queue it enables, by queue index (laid out at construction). */
  readonly queues: readonly DriverQueue[];
  /** Times the transport raised its interrupt (`interrupt(true)` calls). */
  interrupts = 0;
  /** The interrupt line as the transport last drove it. */
  interruptLevel = false;
  /** Features negotiated by the last `init`/`bringUp` (0n before, or if refused). */
  negotiated = 0n;
  private readonly acceptMask: bigint;
  private readonly yieldToEventLoop: () => Promise<void>;

  constructor(
    readonly device: VirtioDevice,
    options: VirtioTestDriverOptions = {},
  ) {
    this.ram = new Uint8Array(options.ramSize ?? DEFAULT_TEST_RAM_SIZE);
    this.memory = new ArrayGuestMemory(this.ram);
    this.transport = new MmioTransport(device, {
      memory: this.memory,
      interrupt: (asserted) => {
        this.interruptLevel = asserted;
        if (asserted) this.interrupts++;
      },
      log: { warn: (m) => this.warnings.push(m) },
      eventIdx: options.transport?.eventIdx,
      indirectDescriptors: options.transport?.indirectDescriptors,
      vendorId: options.transport?.vendorId,
    });
    this.acceptMask = options.acceptMask ?? ~0n;
    this.yieldToEventLoop = options.yieldToEventLoop ?? defaultYield;
    const sizes = options.queueSizes ?? device.queueMaxSizes.map((max) => options.queueSize ?? Math.min(max, DEFAULT_TEST_QUEUE_SIZE));
    let base = TEST_RINGS_BASE;
    const queues: DriverQueue[] = [];
    for (const size of sizes) {
      const { layout, end } = queueLayoutAt(base, size);
      if (end > this.ram.length) throw new Error(`VirtioTestDriver: ${this.ram.length} bytes of RAM cannot hold the rings of ${sizes.length} queues`);
      queues.push(new DriverQueue(this.memory, layout));
      base = end;
    }
    this.queues = queues;
    this.allocator = new BumpAllocator(this.memory, base, this.ram.length);
  }

  // ---- registers ---------------------------------------------------------------------------------

  /** A 32-bit register read. */
  reg(offset: number): number {
    return this.transport.read(offset, 4);
  }

  /** A 32-bit register write. */
  setReg(offset: number, value: number): void {
    this.transport.write(offset, 4, value);
  }

  /** The Status register. */
  get status(): number {
    return this.reg(MmioReg.STATUS);
  }

  /** DEVICE_NEEDS_RESET is set in Status. */
  get needsReset(): boolean {
    return (this.status & Status.DEVICE_NEEDS_RESET) !== 0;
  }

  /** All 64 offered feature bits. */
  offeredFeatures(): bigint {
    return readDeviceFeatures(this.transport);
  }

  /**
   * Reset the device and bring it up as Linux does: negotiate (offer & acceptMask), set up and enable
   * every queue of `queues` with zeroed rings, DRIVER_OK. Returns Status; never throws (for tests of
   * refusals: no FEATURES_OK bit, or DEVICE_NEEDS_RESET).
   */
  bringUp(): number {
    for (const q of this.queues) q.reset();
    this.negotiated = 0n;
    const status = bringUp(
      this.transport,
      this.queues.map((q) => q.layout),
      (offered) => {
        this.negotiated = offered & this.acceptMask;
        return this.negotiated;
      },
    );
    if ((status & Status.FEATURES_OK) === 0) this.negotiated = 0n;
    return status;
  }

  /**
   * `bringUp()`, throwing with the transport's warnings if a queue is larger than its QueueNumMax, the
   * device refused the features or did not start. Returns the negotiated features.
   */
  init(): bigint {
    this.queues.forEach((q, index) => {
      this.setReg(MmioReg.QUEUE_SEL, index);
      const max = this.reg(MmioReg.QUEUE_NUM_MAX);
      if (q.size > max) throw new Error(`VirtioTestDriver: queue ${index} size ${q.size} above its QueueNumMax ${max}`);
    });
    const status = this.bringUp();
    if ((status & Status.FEATURES_OK) === 0) throw new Error(`VirtioTestDriver: FEATURES_OK refused: ${this.warnings.join('; ')}`);
    if ((status & Status.DRIVER_OK) === 0 || (status & Status.DEVICE_NEEDS_RESET) !== 0) {
      throw new Error(`VirtioTestDriver: device did not start (status 0x${status.toString(16)}): ${this.warnings.join('; ')}`);
    }
    return this.negotiated;
  }

  /** Driver-side device reset (Status = 0). The driver's queues are reset by the next init/bringUp. */
  reset(): void {
    this.setReg(MmioReg.STATUS, 0);
  }

  /** Read InterruptStatus and acknowledge those bits, like Linux's vm_interrupt. Returns the bits. */
  ackInterrupt(): number {
    const bits = this.reg(MmioReg.INTERRUPT_STATUS);
    if (bits !== 0) this.setReg(MmioReg.INTERRUPT_ACK, bits);
    return bits;
  }

  /** InterruptStatus has the used-buffer bit. */
  get usedInterruptPending(): boolean {
    return (this.transport.interruptStatus & MmioInterrupt.VRING) !== 0;
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
  /** A config-space write of 1, 2 or 4 bytes. */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    this.transport.write(MmioReg.CONFIG + offset, size, value);
  }

  // ---- guest memory ------------------------------------------------------------------------------

  /** Allocate guest RAM after the rings (never reused), optionally filled. Returns its address. */
  alloc(len: number, fill?: Uint8Array | number): number {
    return this.allocator.alloc(len, fill);
  }

  /** A device-readable buffer holding `content` (or `content` bytes of `fill`). */
  readable(content: Uint8Array | number, fill = 0): BufSpec {
    const len = typeof content === 'number' ? content : content.length;
    return { addr: this.alloc(len, typeof content === 'number' ? fill : content), len, writable: false };
  }

  /** A device-writable buffer of `len` bytes, pre-filled with `fill` (so untouched bytes are visible). */
  writable(len: number, fill = 0): BufSpec {
    return { addr: this.alloc(len, fill), len, writable: true };
  }

  /** A copy of guest RAM [addr, addr + len). */
  bytes(addr: number, len: number): Uint8Array {
    const view = guestView(this.memory, addr, len);
    if (view === undefined) throw new Error(`VirtioTestDriver: [0x${addr.toString(16)}, +${len}) is not guest RAM`);
    return view.slice();
  }

  // ---- queues ------------------------------------------------------------------------------------

  /** The driver side of queue `index`. */
  queue(index = 0): DriverQueue {
    const q = this.queues[index];
    if (q === undefined) throw new Error(`VirtioTestDriver: queue ${index} is not set up (${this.queues.length} queues)`);
    return q;
  }

  /** QueueNotify for queue `index`. */
  notify(index = 0): void {
    this.setReg(MmioReg.QUEUE_NOTIFY, index);
  }

  /** Post a direct chain of `buffers` and (by default) notify. Returns its head. */
  submit(buffers: readonly BufSpec[], options: SubmitOptions = {}): number {
    const index = options.queue ?? 0;
    const head = this.queue(index).addChain(buffers);
    if (options.notify ?? true) this.notify(index);
    return head;
  }

  /** Post a chain through one indirect table (allocated here) and (by default) notify. Returns its head. */
  submitIndirect(buffers: readonly BufSpec[], options: SubmitOptions = {}): number {
    const index = options.queue ?? 0;
    const table = this.alloc(buffers.length * Desc.SIZE);
    const head = this.queue(index).addIndirectChain(buffers, table);
    if (options.notify ?? true) this.notify(index);
    return head;
  }

  /** Used elements of queue `index` added since the last call (see DriverQueue.takeUsed). */
  takeUsed(index = 0): UsedElem[] {
    return this.queue(index).takeUsed();
  }

  /**
   * Yield to the event loop until queue `index` has at least `n` used elements takeUsed has not
   * returned, then take them all. Rejects after `timeoutMs` (default 5000) of wall time.
   */
  async waitUsed(n: number, options: { queue?: number; timeoutMs?: number } = {}): Promise<UsedElem[]> {
    const q = this.queue(options.queue ?? 0);
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    while (q.pendingUsed < n) {
      if (Date.now() > deadline) throw new Error(`VirtioTestDriver: timed out waiting for ${n} used elements (have ${q.pendingUsed})`);
      await this.yieldToEventLoop();
    }
    return q.takeUsed();
  }

  /** The bytes the device wrote for a used element taken from one of this driver's queues. */
  writtenBytes(elem: UsedElem): Uint8Array {
    return writtenBytes(this.memory, elem);
  }
}
