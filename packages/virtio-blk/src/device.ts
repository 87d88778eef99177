import {
  type ActivationContext,
  type DescriptorChain,
  type SplitQueue,
  type VirtioDevice,
  type VirtioDeviceHost,
  type VirtioLogger,
  featureMask,
  rateLimitedLogger,
  silentLogger,
} from '@hype/virtio';
import type { BlockBackend } from './backend.js';
import { type BlkLimits, DEFAULT_QUEUE_SIZE, buildConfigSpace, checkLimits, defaultLimits, requestLimitsFor } from './config.js';
import { type ServedChain, type StillOwned, serveChain, writeStatus } from './execute.js';
import { BLK_CONFIG, BlkFeature, BlkStatus, SECTOR_SIZE, VIRTIO_ID_BLOCK } from './layout.js';
import { type BlkRequestLimits, parseRequestViews } from './request.js';
import { encodeSerial } from './serial.js';

/** Requests parsed and submitted per turn of the event loop; the rest wait for the next turn. */
export const REQUESTS_PER_TURN = 64;

export interface VirtioBlkOptions {
  backend: BlockBackend;
  /**
   * GET_ID answer, printable ASCII, at most 20 characters. Default: empty (20 NULs). A VM should give
   * each disk a distinct one; `defaultSerial(index)` is hype's convention (`hype-disk-0` = /dev/vda).
   */
  serial?: string;
  /** QueueNumMax of the single request queue: a power of two in [4, 32768]. Default 256. */
  queueSize?: number;
  /** Overrides of the advertised limits (see `defaultLimits`). */
  limits?: Partial<BlkLimits>;
}

/**
 * A virtio block device (virtio 1.2 §5.2) with one request queue, for any transport implementing
 * @hype/virtio's VirtioDevice contract. Requests run concurrently against the backend and complete in
 * any order; each completion writes the status byte and the used element (length = data written to the
 * guest + 1) and interrupts as the ring's notification suppression allows. Completions that finish
 * after a reset are dropped: no status byte is written into memory the guest may have reused.
 *
 * Several disks = several instances, each on its own transport; the guest names them vda, vdb, ... in
 * the order the VM lists them on the kernel command line.
 */
export class VirtioBlkDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = BLK_CONFIG.SIZE;
  readonly backend: BlockBackend;
  readonly serial: string;
  readonly limits: BlkLimits;
  /** Capacity in 512-byte sectors. */
  readonly capacity: bigint;

  private readonly config: Uint8Array;
  private readonly requestLimits: BlkRequestLimits;
  private readonly id: Uint8Array;
  private log: VirtioLogger = silentLogger;
  private host: VirtioDeviceHost | undefined;
  private queue: SplitQueue | undefined;
  /** Bumped by every activation and reset: completions from an older epoch are dropped. */
  private epoch = 0;
  private inFlightCount = 0;
  private idleWaiters: Array<() => void> = [];
  private interruptScheduled = false;
  private continueScheduled = false;
  private pendingWarning: string | undefined;

  constructor(options: VirtioBlkOptions) {
    const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(queueSize) || queueSize < 4 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new RangeError(`virtio-blk: queueSize ${queueSize} must be a power of two in [4, 32768]`);
    }
    const backend = options.backend;
    this.backend = backend;
    this.serial = options.serial ?? '';
    this.id = encodeSerial(this.serial);
    this.limits = { ...defaultLimits(queueSize), ...options.limits };
    checkLimits(this.limits);
    this.queueMaxSizes = [queueSize];
    this.requestLimits = requestLimitsFor(backend, this.limits);
    this.capacity = this.requestLimits.capacitySectors;

    let features = 0n;
    for (const bit of [BlkFeature.SIZE_MAX, BlkFeature.SEG_MAX, BlkFeature.BLK_SIZE, BlkFeature.FLUSH]) features |= featureMask(bit);
    if (backend.readOnly) features |= featureMask(BlkFeature.RO);
    if (this.requestLimits.discard) features |= featureMask(BlkFeature.DISCARD);
    if (this.requestLimits.writeZeroes) features |= featureMask(BlkFeature.WRITE_ZEROES);
    this.deviceFeatures = features;
    this.config = buildConfigSpace({
      capacitySectors: this.capacity,
      limits: this.limits,
      writeZeroesMayUnmap: this.requestLimits.writeZeroes && backend.writeZeroesMayUnmap === true,
    });
    if (backend.size % SECTOR_SIZE !== 0) {
      // Not an error: the guest sees whole sectors only. Reported once the transport gives us a log.
      this.pendingWarning = `${this.name}: size ${backend.size} is not a multiple of ${SECTOR_SIZE}; the last ${backend.size % SECTOR_SIZE} bytes are not visible to the guest`;
    }
  }

  /** For log lines: `virtio-blk <serial>` (`virtio-blk (no serial)` without one). */
  get name(): string {
    return `virtio-blk ${this.serial === '' ? '(no serial)' : this.serial}`;
  }

  /** Requests handed to the backend and not completed yet (including ones orphaned by a reset). */
  get inFlight(): number {
    return this.inFlightCount;
  }

  attach(host: VirtioDeviceHost): void {
    this.host = host;
    this.log = rateLimitedLogger(host.log);
    if (this.pendingWarning) {
      this.log.warn(this.pendingWarning);
      this.pendingWarning = undefined;
    }
  }

  readConfig(offset: number, dest: Uint8Array): void {
    dest.set(this.config.subarray(offset, offset + dest.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    // Every field is read-only here (no VIRTIO_BLK_F_CONFIG_WCE): log and ignore.
    this.log.warn(`${this.name}: ${data.length}-byte write to read-only config offset ${offset} ignored`);
  }

  activate(ctx: ActivationContext): void {
    this.epoch++;
    this.queue = ctx.queues[0];
    if (this.queue === undefined) this.log.warn(`${this.name}: activated without its request queue enabled`);
  }

  reset(): void {
    this.epoch++;
    this.queue = undefined;
  }

  processQueue(index: number): void {
    const queue = this.queue;
    if (index !== 0 || queue === undefined) {
      this.log.warn(`${this.name}: notify of queue ${index}, which does not exist or is not enabled`);
      return;
    }
    const epoch = this.epoch;
    const stillOwned = () => epoch === this.epoch && queue.isLive;
    let chain: DescriptorChain | null;
    let handled = 0;
    // Heads in flight cannot be popped again, so at most queue-size requests are in flight; and at most
    // REQUESTS_PER_TURN are parsed per turn of the event loop before the rest waits for the next one.
    while (handled < REQUESTS_PER_TURN && (chain = queue.popChain()) !== null) {
      handled++;
      const parsed = parseRequestViews(chain.buffers, chain.views, this.requestLimits);
      if (parsed.kind === 'rejected' || parsed.kind === 'unanswerable') {
        this.log.warn(`${this.name}: request at head ${chain.head}: ${parsed.reason}`);
        if (parsed.kind === 'rejected') parsed.status[0] = parsed.code;
        queue.addUsed(chain, parsed.kind === 'rejected' ? 1 : 0);
        continue;
      }
      this.inFlightCount++;
      const c = chain;
      void serveChain(parsed, this.backend, this.id, stillOwned).then(
        (served) => this.complete(queue, c, served, stillOwned),
        // serveChain turns backend failures into IOERR; this only catches a bug in it.
        (error) => this.complete(queue, c, { statusView: parsed.status, code: BlkStatus.IOERR, usedLen: 1, problem: `internal error: ${String(error)}` }, stillOwned),
      );
    }
    queue.interruptIfNeeded();
    if (handled === REQUESTS_PER_TURN) this.scheduleContinue(queue);
  }

  /** Resumes popping in a later turn of the event loop (the guest may have more available). */
  private scheduleContinue(queue: SplitQueue): void {
    if (this.continueScheduled) return;
    this.continueScheduled = true;
    setTimeout(() => {
      this.continueScheduled = false;
      if (queue === this.queue && queue.isLive) this.processQueue(0);
    }, 0);
  }

  /** Resolves once no request is in flight (e.g. before closing the backend at VM shutdown). */
  drain(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits for in-flight requests, then closes the backend. */
  async close(): Promise<void> {
    await this.drain();
    await this.backend.close();
  }

  private complete(queue: SplitQueue, chain: DescriptorChain, served: ServedChain, stillOwned: StillOwned): void {
    this.inFlightCount--;
    try {
      if (served.problem) this.log.warn(`${this.name}: request at head ${chain.head}: ${served.problem}`);
      if (!stillOwned()) return; // reset meanwhile: the guest no longer owns this chain's memory for us
      const usedLen = writeStatus(served);
      if (queue.addUsed(chain, usedLen)) this.scheduleInterrupt(queue);
    } catch (error) {
      this.host?.needsReset(`${this.name}: completing a request failed: ${String(error)}`);
    } finally {
      if (this.inFlightCount === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  /** One interrupt decision for all completions that land in the same turn of the event loop. */
  private scheduleInterrupt(queue: SplitQueue): void {
    if (this.interruptScheduled) return;
    this.interruptScheduled = true;
    queueMicrotask(() => {
      this.interruptScheduled = false;
      if (queue === this.queue) queue.interruptIfNeeded();
    });
  }
}
