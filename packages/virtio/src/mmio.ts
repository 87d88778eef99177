import type { ActivationContext, VirtioDevice, VirtioDeviceHost } from './device.js';
import { Feature, Status, TRANSPORT_FEATURES_MASK, featureMask, hasFeature } from './features.js';
import { rateLimitedLogger, silentLogger, type VirtioLogger } from './log.js';
import { type GuestMemory, joinAddress } from './memory.js';
import { MMIO_MAGIC_VALUE, MMIO_VERSION, MmioInterrupt, MmioReg } from './mmio-registers.js';
import { SplitQueue } from './queue.js';

/**
 * How the transport signals its interrupt line. Called with `true` every time an InterruptStatus bit is
 * raised (even if one was already pending) and with `false` when the driver's InterruptACK (or a reset)
 * clears the last pending bit. An edge-style VM (KVM_IRQFD without resample) triggers on every `true`
 * and ignores `false`; a level-style VM drives the line to the given level.
 */
export type InterruptCallback = (asserted: boolean) => void;

export interface MmioTransportOptions {
  readonly memory: GuestMemory;
  readonly interrupt: InterruptCallback;
  /**
   * Guest errors (bad register accesses, bad rings) and device failures. Default: silent. Wrapped in
   * `rateLimitedLogger` so a guest hammering a bad register cannot flood it.
   */
  readonly log?: VirtioLogger;
  /** VendorID register. Default 0 (as Firecracker and Cloud Hypervisor). */
  readonly vendorId?: number;
  /** Offer VIRTIO_F_INDIRECT_DESC. Default true. */
  readonly indirectDescriptors?: boolean;
  /** Offer VIRTIO_F_EVENT_IDX. Default true. */
  readonly eventIdx?: boolean;
}

/** Per-queue registers as the driver writes them before DRIVER_OK. */
interface QueueRegisters {
  readonly maxSize: number;
  size: number;
  ready: boolean;
  descLow: number;
  descHigh: number;
  driverLow: number;
  driverHigh: number;
  deviceLow: number;
  deviceHigh: number;
}

const STATUS_STEPS = [Status.ACKNOWLEDGE, Status.DRIVER, Status.FEATURES_OK, Status.DRIVER_OK] as const;
const DRIVER_STATUS_BITS = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK | Status.FAILED;
const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * The virtio-mmio transport, version 2 (virtio 1.2 §4.2): the register file of one device window.
 *
 * The VM routes MMIO accesses in [base, base + 0x1000) here as `read(offset, size)` / `write(offset,
 * size, value)`; with KVM_IOEVENTFD on base + QUEUE_NOTIFY (datamatch = queue index) it calls
 * `notify(queueIndex)` instead. Nothing a guest writes throws out of these methods.
 */
export class MmioTransport implements VirtioDeviceHost {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  readonly log: VirtioLogger;
  /** Device features offered to the driver (device bits + VERSION_1 + supported ring features). */
  readonly offeredFeatures: bigint;

  private readonly signal: InterruptCallback;
  private readonly vendorId: number;
  private readonly queueRegs: QueueRegisters[];

  private deviceStatus = 0;
  private driverFeatureBits = 0n;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private interruptBits = 0;
  private generation = 0;
  private queues: Array<SplitQueue | undefined> = [];
  private active = false;

  constructor(device: VirtioDevice, options: MmioTransportOptions) {
    this.device = device;
    this.memory = options.memory;
    this.log = rateLimitedLogger(options.log ?? silentLogger);
    this.signal = options.interrupt;
    this.vendorId = (options.vendorId ?? 0) >>> 0;
    let transportBits = featureMask(Feature.VERSION_1);
    if (options.indirectDescriptors ?? true) transportBits |= featureMask(Feature.RING_INDIRECT_DESC);
    if (options.eventIdx ?? true) transportBits |= featureMask(Feature.RING_EVENT_IDX);
    this.offeredFeatures = (device.deviceFeatures & ~TRANSPORT_FEATURES_MASK) | transportBits;
    this.queueRegs = device.queueMaxSizes.map((maxSize) => ({
      maxSize,
      size: maxSize,
      ready: false,
      descLow: 0,
      descHigh: 0,
      driverLow: 0,
      driverHigh: 0,
      deviceLow: 0,
      deviceHigh: 0,
    }));
    device.attach(this);
  }

  /** The Status register. */
  get status(): number {
    return this.deviceStatus;
  }

  /** The InterruptStatus register. */
  get interruptStatus(): number {
    return this.interruptBits;
  }

  /** The ConfigGeneration register. */
  get configGeneration(): number {
    return this.generation;
  }

  /** Features the driver acknowledged (meaningful once FEATURES_OK is set). */
  get driverFeatures(): bigint {
    return this.driverFeatureBits;
  }

  /** True between a successful DRIVER_OK and the next reset / DEVICE_NEEDS_RESET. */
  get isActive(): boolean {
    return this.active;
  }

  /** The live queues of the current activation (empty when not active). */
  get activeQueues(): ReadonlyArray<SplitQueue | undefined> {
    return this.queues;
  }

  // ---- register file -------------------------------------------------------------------------------

  /** An MMIO read of `size` (1, 2 or 4) bytes at `offset` in the window. Unsupported accesses read 0. */
  read(offset: number, size: number): number {
    if (offset >= MmioReg.CONFIG) return this.readConfig(offset - MmioReg.CONFIG, size);
    if (size !== 4 || offset % 4 !== 0 || offset < 0) {
      this.log.warn(`virtio-mmio: ${size}-byte read at ${hex(offset)} ignored (registers take aligned 32-bit accesses)`);
      return 0;
    }
    const queue = this.queueRegs[this.queueSel];
    switch (offset) {
      case MmioReg.MAGIC_VALUE:
        return MMIO_MAGIC_VALUE;
      case MmioReg.VERSION:
        return MMIO_VERSION;
      case MmioReg.DEVICE_ID:
        return this.device.deviceType >>> 0;
      case MmioReg.VENDOR_ID:
        return this.vendorId;
      case MmioReg.DEVICE_FEATURES:
        // Features are 64 bits here; higher selector words read as 0.
        return this.deviceFeaturesSel < 2 ? Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn) : 0;
      case MmioReg.QUEUE_NUM_MAX:
        return queue === undefined ? 0 : queue.maxSize;
      case MmioReg.QUEUE_READY:
        return queue?.ready ? 1 : 0;
      case MmioReg.INTERRUPT_STATUS:
        return this.interruptBits;
      case MmioReg.STATUS:
        return this.deviceStatus;
      case MmioReg.CONFIG_GENERATION:
        return this.generation;
      case MmioReg.SHM_LEN_LOW:
      case MmioReg.SHM_LEN_HIGH:
      case MmioReg.SHM_BASE_LOW:
      case MmioReg.SHM_BASE_HIGH:
        // No shared memory regions: a non-existent region reads as length (and base) -1 (§4.2.2).
        return 0xffff_ffff;
      case MmioReg.QUEUE_RESET:
        return 0;
      default:
        this.log.warn(`virtio-mmio: read of write-only or unknown register ${hex(offset)} ignored`);
        return 0;
    }
  }

  /** An MMIO write of `size` (1, 2 or 4) bytes at `offset` in the window. Bad accesses are logged and ignored. */
  write(offset: number, size: number, value: number): void {
    if (offset >= MmioReg.CONFIG) {
      this.writeConfig(offset - MmioReg.CONFIG, size, value);
      return;
    }
    if (size !== 4 || offset % 4 !== 0 || offset < 0) {
      this.log.warn(`virtio-mmio: ${size}-byte write at ${hex(offset)} ignored (registers take aligned 32-bit accesses)`);
      return;
    }
    const v = value >>> 0;
    switch (offset) {
      case MmioReg.DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v;
        return;
      case MmioReg.DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v;
        return;
      case MmioReg.DRIVER_FEATURES:
        this.writeDriverFeatures(v);
        return;
      case MmioReg.QUEUE_SEL:
        this.queueSel = v;
        return;
      case MmioReg.QUEUE_NUM:
      case MmioReg.QUEUE_DESC_LOW:
      case MmioReg.QUEUE_DESC_HIGH:
      case MmioReg.QUEUE_DRIVER_LOW:
      case MmioReg.QUEUE_DRIVER_HIGH:
      case MmioReg.QUEUE_DEVICE_LOW:
      case MmioReg.QUEUE_DEVICE_HIGH:
        this.writeQueueRegister(offset, v);
        return;
      case MmioReg.QUEUE_READY:
        this.writeQueueReady(v);
        return;
      case MmioReg.QUEUE_NOTIFY:
        this.notify(v);
        return;
      case MmioReg.INTERRUPT_ACK:
        this.acknowledgeInterrupt(v);
        return;
      case MmioReg.STATUS:
        this.writeStatus(v);
        return;
      case MmioReg.SHM_SEL:
        return;
      default:
        this.log.warn(`virtio-mmio: write of ${hex(v)} to read-only, legacy or unknown register ${hex(offset)} ignored`);
    }
  }

  /**
   * The driver notified queue `queueIndex` (a QueueNotify write, or its ioeventfd fired). Ignored unless
   * the device is active and the queue live.
   */
  notify(queueIndex: number): void {
    if (!this.active) {
      this.log.debug?.(`virtio-mmio: notify of queue ${queueIndex} while the device is not running, ignored`);
      return;
    }
    const queue = this.queues[queueIndex];
    if (queue === undefined || !Number.isInteger(queueIndex)) {
      this.log.warn(`virtio-mmio: notify of queue ${queueIndex}, which is not enabled (device has ${this.queueRegs.length}), ignored`);
      return;
    }
    if (!queue.isLive) return;
    this.guard(`processing queue ${queueIndex}`, () => this.device.processQueue(queueIndex));
  }

  // ---- VirtioDeviceHost ----------------------------------------------------------------------------

  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    if ((this.deviceStatus & Status.DRIVER_OK) !== 0) this.raise(MmioInterrupt.CONFIG);
  }

  needsReset(reason: string): void {
    this.log.warn(`virtio-mmio (device ${this.device.deviceType}): device needs reset: ${reason}`);
    if ((this.deviceStatus & Status.DEVICE_NEEDS_RESET) !== 0) return;
    this.deviceStatus |= Status.DEVICE_NEEDS_RESET;
    this.stopQueues();
    if ((this.deviceStatus & Status.DRIVER_OK) !== 0) this.raise(MmioInterrupt.CONFIG);
  }

  /** Reset from the host side (e.g. VM reboot): same as the driver writing 0 to Status. */
  reset(): void {
    this.stopQueues();
    this.guard('reset', () => this.device.reset(), false);
    this.deviceStatus = 0;
    this.driverFeatureBits = 0n;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.queueSel = 0;
    for (const q of this.queueRegs) {
      q.size = q.maxSize;
      q.ready = false;
      q.descLow = q.descHigh = q.driverLow = q.driverHigh = q.deviceLow = q.deviceHigh = 0;
    }
    if (this.interruptBits !== 0) {
      this.interruptBits = 0;
      this.signal(false);
    }
  }

  // ---- internals -----------------------------------------------------------------------------------

  /** Run device code; anything it throws is a device bug: logged, and the device needs a reset. */
  private guard(what: string, fn: () => void, resetOnThrow = true): boolean {
    try {
      fn();
      return true;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (resetOnThrow) this.needsReset(`device threw while ${what}: ${message}`);
      else this.log.warn(`virtio-mmio (device ${this.device.deviceType}): device threw while ${what}: ${message}`);
      return false;
    }
  }

  private raise(bit: number): void {
    this.interruptBits |= bit;
    this.signal(true);
  }

  private acknowledgeInterrupt(bits: number): void {
    if (this.interruptBits === 0) return;
    this.interruptBits &= ~bits;
    if (this.interruptBits === 0) this.signal(false);
  }

  private stopQueues(): void {
    for (const q of this.queues) q?.stop();
    this.queues = [];
    this.active = false;
  }

  private readConfig(offset: number, size: number): number {
    if ((size !== 1 && size !== 2 && size !== 4) || offset + size > this.device.configSize) {
      this.log.warn(`virtio-mmio: ${size}-byte config read at ${hex(offset)} outside a ${this.device.configSize}-byte config space ignored`);
      return 0;
    }
    const bytes = new Uint8Array(size);
    if (!this.guard('reading config', () => this.device.readConfig(offset, bytes), false)) return 0;
    const dv = new DataView(bytes.buffer);
    return size === 1 ? dv.getUint8(0) : size === 2 ? dv.getUint16(0, true) : dv.getUint32(0, true);
  }

  private writeConfig(offset: number, size: number, value: number): void {
    if ((size !== 1 && size !== 2 && size !== 4) || offset + size > this.device.configSize) {
      this.log.warn(`virtio-mmio: ${size}-byte config write at ${hex(offset)} outside a ${this.device.configSize}-byte config space ignored`);
      return;
    }
    const bytes = new Uint8Array(size);
    const dv = new DataView(bytes.buffer);
    if (size === 1) dv.setUint8(0, value & 0xff);
    else if (size === 2) dv.setUint16(0, value & 0xffff, true);
    else dv.setUint32(0, value >>> 0, true);
    this.guard('writing config', () => this.device.writeConfig(offset, bytes));
  }

  private writeDriverFeatures(value: number): void {
    const s = this.deviceStatus;
    if ((s & Status.DRIVER) === 0 || (s & (Status.FEATURES_OK | Status.FAILED)) !== 0) {
      this.log.warn(`virtio-mmio: DriverFeatures write in status ${hex(s)} ignored (allowed after DRIVER, before FEATURES_OK)`);
      return;
    }
    if (this.driverFeaturesSel >= 2) {
      if (value !== 0) this.log.warn(`virtio-mmio: DriverFeatures word ${this.driverFeaturesSel} = ${hex(value)} ignored (no such features)`);
      return;
    }
    const shift = BigInt(32 * this.driverFeaturesSel);
    this.driverFeatureBits = (this.driverFeatureBits & ~(0xffff_ffffn << shift)) | (BigInt(value) << shift);
  }

  /** Queue registers may be written after FEATURES_OK, before DRIVER_OK, while the queue is not ready (§4.2.2.3). */
  private queueSetupAllowed(register: string): QueueRegisters | undefined {
    const s = this.deviceStatus;
    const queue = this.queueRegs[this.queueSel];
    if (queue === undefined) {
      this.log.warn(`virtio-mmio: ${register} write for queue ${this.queueSel}, which does not exist, ignored`);
      return undefined;
    }
    if ((s & Status.FEATURES_OK) === 0 || (s & (Status.DRIVER_OK | Status.FAILED | Status.DEVICE_NEEDS_RESET)) !== 0) {
      this.log.warn(`virtio-mmio: ${register} write for queue ${this.queueSel} in status ${hex(s)} ignored (allowed after FEATURES_OK, before DRIVER_OK)`);
      return undefined;
    }
    return queue;
  }

  private writeQueueRegister(offset: number, value: number): void {
    const name = `queue register ${hex(offset)}`;
    const queue = this.queueSetupAllowed(name);
    if (queue === undefined) return;
    if (queue.ready) {
      this.log.warn(`virtio-mmio: ${name} write for queue ${this.queueSel} while it is ready ignored`);
      return;
    }
    switch (offset) {
      case MmioReg.QUEUE_NUM:
        if (value === 0 || value > queue.maxSize || (value & (value - 1)) !== 0) {
          // Kept anyway: activation refuses the queue (DEVICE_NEEDS_RESET) if the driver enables it.
          this.log.warn(`virtio-mmio: queue ${this.queueSel} size ${value} is not a power of two in [1, ${queue.maxSize}]`);
        }
        queue.size = value;
        return;
      case MmioReg.QUEUE_DESC_LOW:
        queue.descLow = value;
        return;
      case MmioReg.QUEUE_DESC_HIGH:
        queue.descHigh = value;
        return;
      case MmioReg.QUEUE_DRIVER_LOW:
        queue.driverLow = value;
        return;
      case MmioReg.QUEUE_DRIVER_HIGH:
        queue.driverHigh = value;
        return;
      case MmioReg.QUEUE_DEVICE_LOW:
        queue.deviceLow = value;
        return;
      case MmioReg.QUEUE_DEVICE_HIGH:
        queue.deviceHigh = value;
        return;
    }
  }

  private writeQueueReady(value: number): void {
    if (value === 0) {
      // Disabling is always accepted (Linux writes 0 when deleting queues, after a reset).
      const queue = this.queueRegs[this.queueSel];
      if (queue === undefined) return;
      queue.ready = false;
      const live = this.queues[this.queueSel];
      if (live !== undefined) {
        live.stop();
        this.queues[this.queueSel] = undefined;
      }
      return;
    }
    if (value !== 1) {
      this.log.warn(`virtio-mmio: QueueReady value ${hex(value)} for queue ${this.queueSel} ignored (0 or 1)`);
      return;
    }
    const queue = this.queueSetupAllowed('QueueReady');
    if (queue !== undefined) queue.ready = true;
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.log.debug?.(`virtio-mmio (device ${this.device.deviceType}): reset by the driver`);
      this.reset();
      return;
    }
    // The driver reads Status, ORs a bit in and writes it back, so DEVICE_NEEDS_RESET may come back.
    const requested = value & ~Status.DEVICE_NEEDS_RESET;
    if ((requested & ~DRIVER_STATUS_BITS) !== 0) {
      this.log.warn(`virtio-mmio: Status write ${hex(value)} has unknown bits, ignored`);
      return;
    }
    if ((requested & Status.FAILED) !== 0) {
      // The driver gave up (allowed at any time); record it. Nothing else changes until a reset.
      this.deviceStatus |= Status.FAILED;
      this.stopQueues();
      return;
    }
    const current = this.deviceStatus & ~Status.DEVICE_NEEDS_RESET;
    if ((requested & current) !== current) {
      this.log.warn(`virtio-mmio: Status write ${hex(value)} clears bits of ${hex(this.deviceStatus)} without a reset, ignored`);
      return;
    }
    // Steps must be taken in order: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK (several at once is fine).
    let expected = 0;
    for (const step of STATUS_STEPS) {
      if ((requested & step) === 0) break;
      expected |= step;
    }
    if (expected !== requested) {
      this.log.warn(`virtio-mmio: Status write ${hex(value)} skips a step of ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, ignored`);
      return;
    }
    for (const step of STATUS_STEPS) {
      if ((requested & step) === 0 || (this.deviceStatus & step) !== 0) continue;
      if (step === Status.FEATURES_OK && !this.featuresAcceptable()) return;
      if (step === Status.DRIVER_OK) {
        this.deviceStatus |= step;
        this.activate();
        return;
      }
      this.deviceStatus |= step;
    }
  }

  private featuresAcceptable(): boolean {
    const features = this.driverFeatureBits;
    const unoffered = features & ~this.offeredFeatures;
    if (unoffered !== 0n) {
      this.log.warn(`virtio-mmio: driver accepted features 0x${unoffered.toString(16)} that were not offered; FEATURES_OK refused`);
      return false;
    }
    if (!hasFeature(features, Feature.VERSION_1)) {
      this.log.warn('virtio-mmio: driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported); FEATURES_OK refused');
      return false;
    }
    let accepted = true;
    if (this.device.acceptFeatures !== undefined) {
      this.guard('checking features', () => {
        accepted = this.device.acceptFeatures!(features) === true;
      }, false);
    }
    if (!accepted) this.log.warn(`virtio-mmio: device refused features 0x${features.toString(16)}; FEATURES_OK refused`);
    return accepted;
  }

  private activate(): void {
    if ((this.deviceStatus & Status.DEVICE_NEEDS_RESET) !== 0) {
      this.log.warn('virtio-mmio: DRIVER_OK while the device needs a reset; not activated');
      return;
    }
    const features = this.driverFeatureBits;
    const queues: Array<SplitQueue | undefined> = [];
    for (let index = 0; index < this.queueRegs.length; index++) {
      const regs = this.queueRegs[index];
      if (!regs.ready) {
        queues.push(undefined);
        continue;
      }
      const queue = SplitQueue.create({
        index,
        layout: {
          size: regs.size,
          descAddr: joinAddress(regs.descLow, regs.descHigh),
          availAddr: joinAddress(regs.driverLow, regs.driverHigh),
          usedAddr: joinAddress(regs.deviceLow, regs.deviceHigh),
        },
        maxSize: regs.maxSize,
        memory: this.memory,
        eventIdx: hasFeature(features, Feature.RING_EVENT_IDX),
        indirect: hasFeature(features, Feature.RING_INDIRECT_DESC),
        interrupt: () => this.raise(MmioInterrupt.VRING),
        onBroken: (error) => this.needsReset(error.message),
        log: this.log,
      });
      if (!(queue instanceof SplitQueue)) {
        for (const q of queues) q?.stop();
        this.needsReset(`cannot activate: ${queue.message}`);
        return;
      }
      queues.push(queue);
    }
    this.queues = queues;
    this.active = true;
    const context: ActivationContext = {
      features,
      memory: this.memory,
      queues,
      interrupt: () => {
        if (this.queues === queues && this.active) this.raise(MmioInterrupt.VRING);
      },
      host: this,
    };
    this.guard('activating', () => this.device.activate(context));
    // Buffers made available before DRIVER_OK got no notification the device acted on: look now.
    for (let index = 0; index < queues.length && this.active; index++) {
      if (queues[index]?.isLive && queues[index]!.pending() > 0) {
        this.guard(`processing queue ${index}`, () => this.device.processQueue(index));
      }
    }
  }
}
