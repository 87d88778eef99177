import { type ChainSource, DescriptorChain, InvalidChain, type PoppedChain, parseChain } from './chain.js';
import type { QueueConfigError, QueueConfigErrorKind, QueueError, QueueErrorKind } from './errors.js';
import { silentLogger, type VirtioLogger } from './log.js';
import { type GuestMemory, guestView } from './memory.js';
import { AVAIL_F_NO_INTERRUPT, Avail, Desc, MAX_QUEUE_SIZE, RingAlign, USED_F_NO_NOTIFY, Used } from './ring-layout.js';

/*
 * Memory ordering. Device code runs on one JS thread, but the guest's vCPUs read and write the same
 * RAM concurrently from other host threads, so the ring protocol needs the fences of virtio 1.2 §2.7.13
 * (Linux virtio_rmb/virtio_wmb/virtio_mb):
 *   1. read avail.idx, THEN read ring entries and descriptors       (acquire / read barrier)
 *   2. write used.ring[] entries, THEN write used.idx                (release / write barrier)
 *   3. write used.idx, THEN read used_event / avail.flags            (full barrier: store -> load)
 *   4. write avail_event / used.flags, THEN re-read avail.idx        (full barrier: store -> load)
 * The ring index fields are accessed with Atomics.load / Atomics.store on a Uint16Array (allowed on
 * non-shared buffers). Atomics are sequentially consistent: V8 emits `xchg` (a full fence on x86) for
 * the store and never reorders or caches plain typed-array accesses across them, which covers 1-4.
 * Plain DataView accesses are used for everything else. If a ring's index field is not 2-byte aligned in
 * its ArrayBuffer (only possible with a test memory at an odd offset) or the host is big-endian, the cell
 * falls back to DataView without a fence: correct single-threaded, and noted here as the one gap.
 */
const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A little-endian u16 in guest memory with seq-cst access where the platform allows it. */
interface U16Cell {
  load(): number;
  store(value: number): void;
}

function u16Cell(view: Uint8Array, offset: number): U16Cell {
  const byteOffset = view.byteOffset + offset;
  if (littleEndianHost && byteOffset % 2 === 0) {
    const cell = new Uint16Array(view.buffer, byteOffset, 1);
    return {
      load: () => Atomics.load(cell, 0),
      store: (value) => {
        Atomics.store(cell, 0, value);
      },
    };
  }
  const dv = new DataView(view.buffer, byteOffset, 2);
  return {
    load: () => dv.getUint16(0, true),
    store: (value) => dv.setUint16(0, value, true),
  };
}

/** Where the driver put a queue (guest-physical addresses) and how big it is. */
export interface QueueLayout {
  readonly size: number;
  /** Descriptor table (QueueDesc). */
  readonly descAddr: number;
  /** Driver area = available ring (QueueDriver). */
  readonly availAddr: number;
  /** Device area = used ring (QueueDevice). */
  readonly usedAddr: number;
}

function configError(queueIndex: number, kind: QueueConfigErrorKind, detail: string): QueueConfigError {
  return { kind, message: `virtio queue ${queueIndex}: ${detail}` };
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** The checks of §2.7 on a queue's size and ring addresses; `undefined` if the layout is usable. */
export function validateQueueLayout(
  queueIndex: number,
  layout: QueueLayout,
  maxSize: number,
  memory: GuestMemory,
): QueueConfigError | undefined {
  const { size, descAddr, availAddr, usedAddr } = layout;
  if (size === 0) return configError(queueIndex, 'size-zero', 'queue size 0');
  if (!Number.isInteger(size) || size < 0 || (size & (size - 1)) !== 0) {
    return configError(queueIndex, 'size-not-power-of-two', `queue size ${size} is not a power of two`);
  }
  if (size > maxSize || size > MAX_QUEUE_SIZE) {
    return configError(queueIndex, 'size-too-large', `queue size ${size} above the maximum ${Math.min(maxSize, MAX_QUEUE_SIZE)}`);
  }
  if (descAddr < 0 || descAddr % RingAlign.DESC !== 0) {
    return configError(queueIndex, 'desc-misaligned', `descriptor table at ${hex(descAddr)} is not ${RingAlign.DESC}-byte aligned`);
  }
  if (availAddr < 0 || availAddr % RingAlign.AVAIL !== 0) {
    return configError(queueIndex, 'avail-misaligned', `driver area at ${hex(availAddr)} is not ${RingAlign.AVAIL}-byte aligned`);
  }
  if (usedAddr < 0 || usedAddr % RingAlign.USED !== 0) {
    return configError(queueIndex, 'used-misaligned', `device area at ${hex(usedAddr)} is not ${RingAlign.USED}-byte aligned`);
  }
  if (guestView(memory, descAddr, Desc.SIZE * size) === undefined) {
    return configError(queueIndex, 'desc-outside-memory', `descriptor table [${hex(descAddr)}, +${Desc.SIZE * size}) is not guest RAM`);
  }
  if (guestView(memory, availAddr, Avail.size(size)) === undefined) {
    return configError(queueIndex, 'avail-outside-memory', `driver area [${hex(availAddr)}, +${Avail.size(size)}) is not guest RAM`);
  }
  if (guestView(memory, usedAddr, Used.size(size)) === undefined) {
    return configError(queueIndex, 'used-outside-memory', `device area [${hex(usedAddr)}, +${Used.size(size)}) is not guest RAM`);
  }
  return undefined;
}

export interface SplitQueueOptions {
  /** Queue index within its device (for messages and for chains). */
  readonly index: number;
  readonly layout: QueueLayout;
  /** The device's QueueNumMax for this queue. */
  readonly maxSize: number;
  readonly memory: GuestMemory;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  readonly eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  readonly indirect: boolean;
  /**
   * Most buffers per chain, direct and indirect together (default and ceiling: the queue size, the
   * spec's limit). Longer chains are popped as `InvalidChain` ('too-many-buffers' / 'indirect-too-large').
   */
  readonly maxChainBuffers?: number;
  /** Raise the used-buffer interrupt (the transport sets InterruptStatus bit 0 and signals the VM). */
  readonly interrupt: () => void;
  /** The queue became unusable (the transport sets DEVICE_NEEDS_RESET). Called at most once. */
  readonly onBroken?: (error: QueueError) => void;
  readonly log?: VirtioLogger;
}

/**
 * One split virtqueue (virtio 1.2 §2.7), device side, for one activation of the device. A reset makes
 * the transport `stop()` it and build a new one, so chains from before the reset (whose `owner` is the
 * old queue) are dropped by `addUsed` instead of corrupting the new rings.
 */
export class SplitQueue {
  readonly index: number;
  readonly size: number;
  readonly layout: QueueLayout;
  readonly memory: GuestMemory;
  readonly eventIdx: boolean;
  readonly indirect: boolean;

  private readonly chainSource: ChainSource;
  private readonly availRing: DataView;
  private readonly usedRing: DataView;
  private readonly availIdx: U16Cell;
  private readonly availFlags: U16Cell;
  private readonly usedEvent: U16Cell;
  private readonly usedIdx: U16Cell;
  private readonly usedFlags: U16Cell;
  private readonly availEvent: U16Cell;
  private readonly raiseInterrupt: () => void;
  private readonly onBroken?: (error: QueueError) => void;
  private readonly log: VirtioLogger;

  private lastAvail = 0;
  private nextUsed = 0;
  /** next_used when the last interrupt decision was made (EVENT_IDX), or -1 before the first. */
  private signalledUsed = -1;
  /** Used entries added since the last interrupt decision. */
  private addedSinceSignal = 0;
  private notificationsEnabled = true;
  private live = true;
  private brokenError: QueueError | undefined;
  private inFlightCount = 0;
  /** 1 for each head descriptor popped and not yet used: a head cannot be in flight twice. */
  private readonly headInFlight: Uint8Array;

  /** Build a queue, or say why the layout the driver wrote is unusable. */
  static create(options: SplitQueueOptions): SplitQueue | QueueConfigError {
    const error = validateQueueLayout(options.index, options.layout, options.maxSize, options.memory);
    if (error !== undefined) return error;
    return new SplitQueue(options);
  }

  private constructor(options: SplitQueueOptions) {
    const { layout, memory } = options;
    this.index = options.index;
    this.size = layout.size;
    this.layout = layout;
    this.memory = memory;
    this.eventIdx = options.eventIdx;
    this.indirect = options.indirect;
    this.raiseInterrupt = options.interrupt;
    this.onBroken = options.onBroken;
    this.log = options.log ?? silentLogger;
    // validateQueueLayout checked all three views exist; they stay valid for the queue's lifetime.
    const desc = memory.view(layout.descAddr, Desc.SIZE * this.size)!;
    const avail = memory.view(layout.availAddr, Avail.size(this.size))!;
    const used = memory.view(layout.usedAddr, Used.size(this.size))!;
    this.chainSource = {
      memory,
      descTable: new DataView(desc.buffer, desc.byteOffset, desc.byteLength),
      queueSize: this.size,
      queueIndex: this.index,
      indirect: this.indirect,
      maxChainBuffers: Math.max(1, Math.min(this.size, Math.floor(options.maxChainBuffers ?? this.size))),
    };
    this.headInFlight = new Uint8Array(this.size);
    this.availRing = new DataView(avail.buffer, avail.byteOffset, avail.byteLength);
    this.usedRing = new DataView(used.buffer, used.byteOffset, used.byteLength);
    this.availFlags = u16Cell(avail, Avail.FLAGS);
    this.availIdx = u16Cell(avail, Avail.IDX);
    this.usedEvent = u16Cell(avail, Avail.usedEventOffset(this.size));
    this.usedFlags = u16Cell(used, Used.FLAGS);
    this.usedIdx = u16Cell(used, Used.IDX);
    this.availEvent = u16Cell(used, Used.availEventOffset(this.size));
    // Device-side indices start at 0 (§2.7); publish that even if the driver did not zero the used ring.
    this.usedIdx.store(0);
    this.usedFlags.store(0);
  }

  /** False after `stop()` (device reset) or once the queue broke. */
  get isLive(): boolean {
    return this.live && this.brokenError === undefined;
  }

  /** Why the queue stopped, if it broke (the device then needs a reset). */
  get broken(): QueueError | undefined {
    return this.brokenError;
  }

  /** Chains popped and not yet returned with addUsed. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** The device's next index into the available ring (last_avail_idx), as a u16. */
  get lastAvailIdx(): number {
    return this.lastAvail;
  }

  /** The device's next used index (what used.idx holds), as a u16. */
  get nextUsedIdx(): number {
    return this.nextUsed;
  }

  /** Stop the queue (device reset): nothing is popped or added any more. */
  stop(): void {
    this.live = false;
  }

  private break(kind: QueueErrorKind, detail: string): null {
    if (this.brokenError === undefined) {
      this.brokenError = { kind, message: `virtio queue ${this.index}: ${detail}; the device needs a reset` };
      this.log.warn(this.brokenError.message);
      this.onBroken?.(this.brokenError);
    }
    return null;
  }

  /**
   * Number of chains the driver has made available that were not popped yet (0 if the queue is stopped
   * or broken; never more than the queue size).
   */
  pending(): number {
    if (!this.isLive) return 0;
    const n = (this.availIdx.load() - this.lastAvail) & 0xffff;
    return n > this.size ? 0 : n;
  }

  /**
   * Take the next available chain: a validated `DescriptorChain`, an `InvalidChain` (malformed; return
   * it with `addUsed(chain, 0)`), or `null` when there is nothing (or the queue is stopped or broke).
   *
   * When the ring is found empty and notifications are enabled, notification is re-armed (avail_event
   * with EVENT_IDX) and the ring re-checked, so a chain the guest adds meanwhile is not missed. A device
   * that stops popping before `null` (e.g. backpressure) must come back and pop later on its own.
   */
  pop(): PoppedChain | null {
    if (!this.isLive) return null;
    let availIdx = this.availIdx.load();
    if (availIdx === this.lastAvail) {
      if (!this.notificationsEnabled) return null;
      this.armNotification();
      availIdx = this.availIdx.load();
      if (availIdx === this.lastAvail) return null;
    }
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending > this.size) {
      return this.break('avail-idx-jump', `avail.idx ${availIdx} is ${pending} entries ahead of last_avail_idx ${this.lastAvail} (queue size ${this.size})`);
    }
    const slot = this.lastAvail & (this.size - 1);
    const head = this.availRing.getUint16(Avail.RING + Avail.ENTRY_SIZE * slot, true);
    if (head >= this.size) {
      return this.break('head-out-of-range', `avail.ring[${slot}] names head descriptor ${head} of a ${this.size}-entry table`);
    }
    if (this.headInFlight[head] !== 0) {
      return this.break('head-in-flight', `avail.ring[${slot}] names head descriptor ${head}, which is still in flight`);
    }
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.headInFlight[head] = 1;
    this.inFlightCount++;
    const parsed = parseChain(this.chainSource, head);
    if ('kind' in parsed) return new InvalidChain(this, this.index, head, parsed);
    return new DescriptorChain(this, this.index, head, parsed.buffers, parsed.views, parsed.readableLength, parsed.writableLength);
  }

  /**
   * `pop()` that deals with malformed chains the standard way (log, return them with length 0) and
   * yields only valid chains, or `null`.
   */
  popChain(): DescriptorChain | null {
    for (;;) {
      const popped = this.pop();
      if (popped === null || popped.kind === 'chain') return popped;
      this.log.warn(popped.error.message);
      this.addUsed(popped, 0);
    }
  }

  /**
   * Put a popped chain on the used ring with `writtenLength` bytes written into its device-writable
   * buffers (clamped to their total). Does not interrupt: call `interruptIfNeeded()` after a batch.
   * Returns false, writing nothing, if the chain is from before a reset (another queue instance),
   * was already completed, or the queue is stopped or broken.
   */
  addUsed(chain: PoppedChain, writtenLength: number): boolean {
    if (chain.owner !== this || chain.completed || !this.isLive) return false;
    chain.completed = true;
    this.inFlightCount--;
    this.headInFlight[chain.head] = 0;
    let len = Number.isFinite(writtenLength) && writtenLength > 0 ? Math.floor(writtenLength) : 0;
    if (chain.kind === 'invalid') {
      len = 0;
    } else if (len > chain.writableLength) {
      this.log.warn(`virtio queue ${this.index}: device reported ${len} bytes written into a chain with ${chain.writableLength} writable bytes; clamped`);
      len = chain.writableLength;
    }
    const slot = this.nextUsed & (this.size - 1);
    const elem = Used.RING + Used.ELEM_SIZE * slot;
    this.usedRing.setUint32(elem + Used.ELEM_ID, chain.head, true);
    this.usedRing.setUint32(elem + Used.ELEM_LEN, Math.min(len, 0xffff_ffff), true);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // Release: the element above must be visible before the new idx (Atomics.store orders it).
    this.usedIdx.store(this.nextUsed);
    this.addedSinceSignal++;
    return true;
  }

  /**
   * Decide whether the driver wants an interrupt for the used entries added since the last decision
   * (§2.7.7.2: used_event with EVENT_IDX, else VIRTQ_AVAIL_F_NO_INTERRUPT) and raise it if so.
   * Returns true if it interrupted.
   */
  interruptIfNeeded(): boolean {
    if (!this.isLive) return false;
    if (this.needsNotification()) {
      this.raiseInterrupt();
      return true;
    }
    return false;
  }

  /** The decision of `interruptIfNeeded` without raising anything (it does record the decision). */
  needsNotification(): boolean {
    const added = this.addedSinceSignal;
    this.addedSinceSignal = 0;
    if (!this.eventIdx) {
      return added > 0 && (this.availFlags.load() & AVAIL_F_NO_INTERRUPT) === 0;
    }
    const newIdx = this.nextUsed;
    const oldIdx = this.signalledUsed;
    this.signalledUsed = newIdx;
    if (oldIdx < 0) return added > 0;
    // vring_need_event(used_event, new, old): interrupt iff used_event is in [old, new) on the u16 circle.
    const usedEvent = this.usedEvent.load();
    return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
  }

  /**
   * Ask the driver not to notify (used.flags NO_NOTIFY; with EVENT_IDX avail_event is simply no longer
   * advanced). An optimisation only: notifications may still arrive.
   */
  disableNotifications(): void {
    this.notificationsEnabled = false;
    if (!this.isLive) return;
    if (!this.eventIdx) this.usedFlags.store(USED_F_NO_NOTIFY);
  }

  /**
   * Ask the driver to notify again. Returns true if chains are already available (added while
   * notifications were off, which the driver may not notify about): the caller should pop them.
   */
  enableNotifications(): boolean {
    this.notificationsEnabled = true;
    if (!this.isLive) return false;
    this.armNotification();
    return this.availIdx.load() !== this.lastAvail;
  }

  private armNotification(): void {
    // Both stores are Atomics.store: a full fence before the caller re-reads avail.idx.
    if (this.eventIdx) this.availEvent.store(this.lastAvail);
    else this.usedFlags.store(0);
  }
}
