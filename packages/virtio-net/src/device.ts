import {
  DeferredWork,
  nextTurn,
  type ActivationContext,
  type DescriptorChain,
  type PoppedChain,
  type SplitQueue,
  type VirtioDevice,
  type VirtioDeviceHost,
  type VirtioLogger,
  featureMask,
  hasFeature,
  rateLimitedLogger,
  silentLogger,
} from '@hype/virtio';
import type { NetBackend } from './backend.js';
import {
  ETH_HLEN,
  NET_CONFIG,
  NET_HDR,
  NetFeature,
  NetHdrFlag,
  NetHdrGso,
  NetQueue,
  NetStatus,
  VIRTIO_ID_NET,
  encodeNetHeader,
  formatMac,
  maxFrameSize,
  parseMac,
  randomMac,
} from './layout.js';

// ---- bounds (the guest is hostile: each caps what a guest, or the network, can make the host hold or do)

/** MTU when none is given (advertised with VIRTIO_NET_F_MTU). */
export const DEFAULT_MTU = 1500;
/** Smallest MTU: IPv4's minimum (Linux ignores a smaller advertised MTU). */
export const MIN_MTU = 68;
/** Largest MTU: `mtu` is a 16-bit field. */
export const MAX_MTU = 65535;
/** QueueNumMax of both queues by default. */
export const DEFAULT_QUEUE_SIZE = 256;
/** Frames taken from the transmit queue, and frames written to the receive queue, per turn of the event loop. */
export const PACKETS_PER_TURN = 64;
/** Receive chains popped per turn (frames spanning many small buffers, and malformed chains, count here). */
export const RX_CHAINS_PER_TURN = 256;
/** Frames from the backend the device holds while the guest has no receive buffers, by default. */
export const DEFAULT_RX_QUEUE_FRAMES = 256;
/** Bytes of frames from the backend the device holds while the guest has no receive buffers, by default. */
export const DEFAULT_RX_QUEUE_BYTES = 1024 * 1024;
/** Device feature bits offered: MAC, STATUS, MRG_RXBUF and MTU (no checksum or segmentation offloads). */
export const OFFERED_FEATURES =
  featureMask(NetFeature.MAC) | featureMask(NetFeature.STATUS) | featureMask(NetFeature.MRG_RXBUF) | featureMask(NetFeature.MTU);

export interface VirtioNetDeviceOptions {
  /** Where frames go and come from (see `NetBackend`). The device closes it in `close()`. */
  readonly backend: NetBackend;
  /** The guest's MAC address (`52:54:00:12:34:56` or 6 bytes, unicast). Default: random `52:54:00:xx:xx:xx`. */
  readonly mac?: string | Uint8Array;
  /** MTU advertised to the guest, in [68, 65535]. Default 1500. Frames above mtu + 18 are dropped both ways. */
  readonly mtu?: number;
  /** QueueNumMax of both queues: a power of two in [1, 32768]. Default 256. */
  readonly queueSize?: number;
  /** Where warnings go (rate-limited). Default: the transport's logger. */
  readonly logger?: VirtioLogger;
  /** Most frames held for the guest while it has no receive buffers, in [1, 65536]. Default 256. */
  readonly rxQueueFrames?: number;
  /** Most bytes held for the guest, in [mtu + 18, 64 MiB]. Default 1 MiB. */
  readonly rxQueueBytes?: number;
  /** Runs `callback` on a later turn of the event loop. Default `setImmediate` (else `setTimeout(0)`). */
  readonly defer?: (callback: () => void) => void;
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`virtio-net: ${name} ${value} must be an integer in [${min}, ${max}]`);
  }
  return value;
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * The virtio network device (virtio 1.2 §5.1, device ID 1) with one queue pair (receiveq1 = 0,
 * transmitq1 = 1), no control queue and no multiqueue. Offers VIRTIO_NET_F_MAC, _STATUS, _MRG_RXBUF and
 * _MTU (plus VERSION_1 and the ring features from the transport); every frame on either queue carries the
 * 12-byte `virtio_net_hdr_v1`. No checksum or segmentation offloads: frames are plain Ethernet frames of
 * at most mtu + 14 + 4 bytes, which is what the backends carry.
 *
 * Transmit: each chain is a header and one frame; the frame is copied out (at most `maxFrameSize` bytes)
 * and handed to the backend. When the backend says it is full, the device takes nothing more from the
 * transmit queue (the guest's ring holds the rest) until the backend's `onWritable`.
 *
 * Receive: frames from the backend go into the guest's receive chains, one chain per frame, or with
 * MRG_RXBUF as many chains as the frame needs (`num_buffers`). While the guest has no buffers the device
 * holds at most `rxQueueFrames` frames and `rxQueueBytes` bytes; at that point it pauses the backend, and
 * frames that still arrive are dropped and counted. The backend resumes when half of that has drained.
 *
 * Hostile-guest rules: a malformed chain (see the README) goes back with length 0 and a warning, and
 * is counted; nothing a guest posts throws. Work per turn: at most PACKETS_PER_TURN frames each way and
 * RX_CHAINS_PER_TURN receive chains; the rest runs on a later turn (`defer`).
 */
export class VirtioNetDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly name: string;
  readonly deviceFeatures = OFFERED_FEATURES;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = NET_CONFIG.SIZE;

  readonly mtu: number;
  /** The longest frame either way, Ethernet header and one VLAN tag included: mtu + 18. */
  readonly maxFrameSize: number;
  readonly rxQueueFrames: number;
  readonly rxQueueBytes: number;
  readonly backend: NetBackend;

  private readonly macBytes: Uint8Array;
  private readonly defer: (callback: () => void) => void;
  private readonly ownLogger: VirtioLogger | undefined;
  private host: VirtioDeviceHost | undefined;
  private log: VirtioLogger;
  private readonly unsubscribe: Array<() => void> = [];

  private rxq: SplitQueue | undefined;
  private txq: SplitQueue | undefined;
  private active = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private mergeable = false;
  /** Bumped by every activation, reset and close: deferred turns of an older epoch do nothing. */
  private epoch = 0;
  private readonly rxTurn = new DeferredWork(
    (callback) => this.defer(callback),
    () => this.epoch,
    () => this.safely('delivering frames to the guest', () => this.fillRx()),
  );
  private readonly txTurn = new DeferredWork(
    (callback) => this.defer(callback),
    () => this.epoch,
    () => this.safely('transmitting guest frames', () => this.processTx()),
  );

  /** Frames from the backend waiting for receive buffers (from `rxHead` on). */
  private rxQueue: Uint8Array[] = [];
  private rxHead = 0;
  private rxBytes = 0;
  private rxPausedByUs = false;
  /** Receive chains popped and not yet used (waiting for enough of them for the frame at the head). */
  private rxHeld: DescriptorChain[] = [];
  private rxHeldCapacity = 0;
  /** Descriptors those chains take in the ring's table (exact for direct chains; an indirect one counts its table's entries). */
  private rxHeldDescriptors = 0;

  /** The backend returned false from `send` and has not signalled `onWritable` since. */
  private backendFull = false;
  private backendClosed = false;
  private linkWanted = true;

  private readonly hdrIn = new Uint8Array(NET_HDR.SIZE);
  private readonly hdrOut = new Uint8Array(NET_HDR.SIZE);

  /** Counters, for tests and metrics (across resets). */
  readonly stats = {
    /** Guest frames handed to the backend, and their bytes (headers not counted). */
    txFrames: 0,
    txBytes: 0,
    /** Transmit chains not handed to the backend: malformed, or the backend was closed or threw. */
    txDropped: 0,
    /** Of those, the malformed chains. */
    txMalformed: 0,
    /** Frames written to the guest's receive buffers, and their bytes (headers not counted). */
    rxFrames: 0,
    rxBytes: 0,
    /** Frames from the backend that never reached the guest (any reason below, or a reset). */
    rxDropped: 0,
    /** Of those: the device's queue was full. */
    rxOverflow: 0,
    /** Of those: shorter than an Ethernet header or longer than `maxFrameSize`. */
    rxMalformed: 0,
    /** Of those: the driver had not started the device. */
    rxInactive: 0,
    /** Of those: too big for the (non-mergeable) receive chain at the head of the ring. */
    rxTooBig: 0,
    /** Receive chains returned unused because they were malformed. */
    rxBadChains: 0,
    /** Times the device paused the backend. */
    rxPauses: 0,
  };

  constructor(options: VirtioNetDeviceOptions) {
    if (options === undefined || options === null || typeof options !== 'object') throw new TypeError('virtio-net: options with a backend are required');
    const backend = options.backend;
    for (const method of ['send', 'onFrame', 'onWritable', 'pause', 'resume', 'close'] as const) {
      if (typeof backend?.[method] !== 'function') throw new TypeError(`virtio-net: the backend has no ${method}() method`);
    }
    this.backend = backend;
    const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(queueSize) || queueSize < 1 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new RangeError(`virtio-net: queueSize ${queueSize} must be a power of two in [1, 32768]`);
    }
    this.queueMaxSizes = [queueSize, queueSize];
    this.mtu = checkInteger('mtu', options.mtu ?? DEFAULT_MTU, MIN_MTU, MAX_MTU);
    this.maxFrameSize = maxFrameSize(this.mtu);
    this.rxQueueFrames = checkInteger('rxQueueFrames', options.rxQueueFrames ?? DEFAULT_RX_QUEUE_FRAMES, 1, 65536);
    this.rxQueueBytes = checkInteger('rxQueueBytes', options.rxQueueBytes ?? Math.max(DEFAULT_RX_QUEUE_BYTES, this.maxFrameSize), this.maxFrameSize, 64 * 1024 * 1024);
    this.macBytes = options.mac === undefined ? randomMac() : parseMac(options.mac);
    this.name = `virtio-net ${formatMac(this.macBytes)}`;
    this.defer = options.defer ?? nextTurn;
    this.ownLogger = options.logger === undefined ? undefined : rateLimitedLogger(options.logger);
    this.log = this.ownLogger ?? silentLogger;

    this.unsubscribe.push(backend.onFrame((frame) => this.safely('receiving a frame', () => this.receive(frame))));
    this.unsubscribe.push(backend.onWritable(() => this.safely('resuming transmission', () => this.writable())));
    if (typeof backend.onClose === 'function') {
      this.unsubscribe.push(backend.onClose((error) => this.safely('handling the backend closing', () => this.backendGone(error))));
    }
  }

  // ---- host API ------------------------------------------------------------------------------------

  /** The guest's MAC address, `aa:bb:cc:dd:ee:ff`. */
  get mac(): string {
    return formatMac(this.macBytes);
  }

  /** The driver has started the device (DRIVER_OK) and no reset happened since. */
  get isActive(): boolean {
    return this.active;
  }

  /** VIRTIO_NET_F_MRG_RXBUF was negotiated by the current activation. */
  get mergeableRxBuffers(): boolean {
    return this.mergeable;
  }

  /** What `status` says: the backend is open, `setLinkUp(false)` was not called, and the device is not closed. */
  get linkUp(): boolean {
    return this.linkWanted && !this.backendClosed && !this.closed;
  }

  /** Frames from the backend waiting for receive buffers (at most `rxQueueFrames`). */
  get rxQueuedFrames(): number {
    return this.rxQueue.length - this.rxHead;
  }

  /** Bytes of those frames (at most `rxQueueBytes`). */
  get rxQueuedBytes(): number {
    return this.rxBytes;
  }

  /** The device paused the backend (its receive queue is full) and has not resumed it yet. */
  get rxPaused(): boolean {
    return this.rxPausedByUs;
  }

  /** Receive chains popped and waiting for the rest of a frame (at most the queue size). */
  get rxHeldChains(): number {
    return this.rxHeld.length;
  }

  /** The backend said it is full: the transmit queue waits for its `onWritable`. */
  get txWaiting(): boolean {
    return this.backendFull;
  }

  /**
   * Set the link state the guest sees in `status` (VIRTIO_NET_S_LINK_UP), with a configuration-change
   * interrupt. A closed backend keeps the link down whatever this says.
   */
  setLinkUp(up: boolean): void {
    const before = this.linkUp;
    this.linkWanted = up;
    if (this.linkUp !== before) this.host?.configChanged();
  }

  // ---- VirtioDevice --------------------------------------------------------------------------------

  attach(host: VirtioDeviceHost): void {
    this.host = host;
    this.log = this.ownLogger ?? rateLimitedLogger(host.log);
  }

  readConfig(offset: number, dest: Uint8Array): void {
    const config = new Uint8Array(NET_CONFIG.SIZE);
    const dv = new DataView(config.buffer);
    config.set(this.macBytes, NET_CONFIG.MAC);
    dv.setUint16(NET_CONFIG.STATUS, this.linkUp ? NetStatus.LINK_UP : 0, true);
    dv.setUint16(NET_CONFIG.MAX_VIRTQUEUE_PAIRS, 1, true);
    dv.setUint16(NET_CONFIG.MTU, this.mtu, true);
    dest.set(config.subarray(offset, offset + dest.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.log.warn(`${this.name}: ${data.length}-byte write to read-only config offset ${offset} ignored`);
  }

  activate(ctx: ActivationContext): void {
    this.forgetActivation();
    const rxq = ctx.queues[NetQueue.RX];
    const txq = ctx.queues[NetQueue.TX];
    if (rxq === undefined || txq === undefined) {
      ctx.host.needsReset(`${this.name} needs its receive and transmit queues enabled`);
      return;
    }
    this.rxq = rxq;
    this.txq = txq;
    this.mergeable = hasFeature(ctx.features, NetFeature.MRG_RXBUF);
    this.active = !this.closed;
  }

  processQueue(index: number): void {
    if (!this.active) return;
    switch (index) {
      case NetQueue.RX:
        this.fillRx();
        break;
      case NetQueue.TX:
        this.processTx();
        break;
      default:
        this.log.warn(`${this.name}: notify of queue ${index}, which does not exist`);
    }
  }

  /** Device reset: frames waiting for the guest are dropped, chains of the old activation forgotten. */
  reset(): void {
    this.forgetActivation();
  }

  /** The VM is going away: stop, drop everything, close the backend (once; later calls return the same promise). */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.forgetActivation();
    for (const off of this.unsubscribe.splice(0)) off();
    this.closing = (async () => {
      try {
        await this.backend.close();
      } catch (error) {
        this.log.warn(`${this.name}: closing the backend failed: ${errorText(error)}`);
      }
    })();
    return this.closing;
  }

  // ---- internals: bookkeeping ----------------------------------------------------------------------

  private forgetActivation(): void {
    this.epoch++;
    this.active = false;
    this.rxq = this.txq = undefined;
    this.mergeable = false;
    this.rxTurn.cancel();
    this.txTurn.cancel();
    this.rxHeld = [];
    this.rxHeldCapacity = 0;
    this.rxHeldDescriptors = 0;
    const dropped = this.rxQueuedFrames;
    this.stats.rxDropped += dropped;
    this.rxQueue = [];
    this.rxHead = 0;
    this.rxBytes = 0;
    this.maybeResume();
  }

  /** Backend callbacks and deferred turns must not throw out of the device. */
  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const message = `${this.name}: ${what} failed: ${errorText(error)}`;
      this.log.warn(message);
      this.host?.needsReset(message);
    }
  }

  private scheduleRx(): void {
    if (this.active) this.rxTurn.schedule();
  }

  private scheduleTx(): void {
    if (this.active) this.txTurn.schedule();
  }

  private writable(): void {
    if (!this.backendFull) return;
    this.backendFull = false;
    this.scheduleTx();
  }

  private backendGone(error: Error | undefined): void {
    if (this.backendClosed) return;
    const wasUp = this.linkUp;
    this.backendClosed = true;
    this.backendFull = false;
    if (!this.closed) this.log.warn(`${this.name}: the backend closed${error === undefined ? '' : `: ${error.message}`}; link down`);
    if (wasUp) this.host?.configChanged();
    this.scheduleTx(); // the guest's frames are consumed (and dropped) from now on
  }

  // ---- transmit: guest → backend -------------------------------------------------------------------

  private processTx(): void {
    const txq = this.txq;
    if (!this.active || txq === undefined || !txq.isLive) return;
    let handled = 0;
    while (!this.backendFull) {
      if (handled >= PACKETS_PER_TURN) {
        this.scheduleTx();
        break;
      }
      const popped = txq.pop();
      if (popped === null) break;
      handled++;
      const frame = this.readTxFrame(popped);
      // Transmit buffers are device-readable only: nothing is written back.
      txq.addUsed(popped, 0);
      if (frame !== undefined) this.transmit(frame);
    }
    txq.interruptIfNeeded();
  }

  private txMalformed(message: string): undefined {
    this.stats.txDropped++;
    this.stats.txMalformed++;
    this.log.warn(`${this.name}: transmit ${message}; dropped`);
    return undefined;
  }

  /** The frame of a transmit chain (a copy), or undefined if the chain is malformed (counted, logged). */
  private readTxFrame(popped: PoppedChain): Uint8Array | undefined {
    if (popped.kind === 'invalid') return this.txMalformed(popped.error.message.replace(/^virtio /, ''));
    const head = `chain at head ${popped.head}`;
    if (popped.writableLength > 0 || popped.readableCount < popped.buffers.length) {
      return this.txMalformed(`${head} has device-writable descriptors`);
    }
    if (popped.readableLength < NET_HDR.SIZE) {
      return this.txMalformed(`${head} holds ${popped.readableLength} bytes, less than the ${NET_HDR.SIZE}-byte header`);
    }
    const length = popped.readableLength - NET_HDR.SIZE;
    if (length > this.maxFrameSize) {
      return this.txMalformed(`${head}: a ${length}-byte frame is above the ${this.maxFrameSize}-byte maximum (MTU ${this.mtu})`);
    }
    if (length < ETH_HLEN) {
      return this.txMalformed(`${head}: a ${length}-byte frame is shorter than an Ethernet header`);
    }
    const reader = popped.reader();
    reader.read(this.hdrIn);
    const flags = this.hdrIn[NET_HDR.FLAGS];
    const gsoType = this.hdrIn[NET_HDR.GSO_TYPE];
    if ((flags & NetHdrFlag.NEEDS_CSUM) !== 0 || gsoType !== NetHdrGso.NONE) {
      return this.txMalformed(`${head} asks for ${gsoType !== NetHdrGso.NONE ? `segmentation (gso_type ${gsoType})` : 'a checksum (NEEDS_CSUM)'}, which was not negotiated`);
    }
    const frame = new Uint8Array(length);
    reader.read(frame);
    return frame;
  }

  private transmit(frame: Uint8Array): void {
    if (this.backendClosed) {
      this.stats.txDropped++;
      return;
    }
    let more: boolean;
    try {
      more = this.backend.send(frame);
    } catch (error) {
      this.stats.txDropped++;
      this.log.warn(`${this.name}: the backend's send() threw: ${errorText(error)}; frame dropped`);
      return;
    }
    this.stats.txFrames++;
    this.stats.txBytes += frame.length;
    if (more === false) this.backendFull = true;
  }

  // ---- receive: backend → guest --------------------------------------------------------------------

  private receive(frame: Uint8Array): void {
    if (this.closed) return;
    if (!this.active) {
      this.stats.rxDropped++;
      this.stats.rxInactive++;
      return;
    }
    if (!(frame instanceof Uint8Array) || frame.length < ETH_HLEN || frame.length > this.maxFrameSize) {
      this.stats.rxDropped++;
      this.stats.rxMalformed++;
      const length = frame instanceof Uint8Array ? `${frame.length}-byte frame` : 'a frame that is not a Uint8Array';
      this.log.warn(`${this.name}: the backend delivered a ${length} (frames are ${ETH_HLEN} to ${this.maxFrameSize} bytes); dropped`);
      return;
    }
    if (this.rxQueuedFrames >= this.rxQueueFrames || this.rxBytes + frame.length > this.rxQueueBytes) {
      this.stats.rxDropped++;
      this.stats.rxOverflow++;
      this.pauseBackend();
      return;
    }
    this.rxQueue.push(frame);
    this.rxBytes += frame.length;
    if (this.rxQueuedFrames >= this.rxQueueFrames || this.rxBytes + this.maxFrameSize > this.rxQueueBytes) this.pauseBackend();
    this.scheduleRx();
  }

  private pauseBackend(): void {
    if (this.rxPausedByUs) return;
    this.rxPausedByUs = true;
    this.stats.rxPauses++;
    try {
      this.backend.pause();
    } catch (error) {
      this.log.warn(`${this.name}: the backend's pause() threw: ${errorText(error)}`);
    }
  }

  /** Resume a backend we paused once the queue has drained to half. */
  private maybeResume(): void {
    if (!this.rxPausedByUs || this.closed) return;
    if (this.rxQueuedFrames > this.rxQueueFrames / 2 || this.rxBytes > this.rxQueueBytes / 2) return;
    this.rxPausedByUs = false;
    try {
      this.backend.resume();
    } catch (error) {
      this.log.warn(`${this.name}: the backend's resume() threw: ${errorText(error)}`);
    }
  }

  private shiftRx(): Uint8Array {
    const frame = this.rxQueue[this.rxHead];
    this.rxQueue[this.rxHead] = undefined as unknown as Uint8Array; // let it go
    this.rxHead++;
    this.rxBytes -= frame.length;
    if (this.rxHead === this.rxQueue.length) {
      this.rxQueue = [];
      this.rxHead = 0;
    } else if (this.rxHead > 64 && this.rxHead * 2 > this.rxQueue.length) {
      this.rxQueue = this.rxQueue.slice(this.rxHead);
      this.rxHead = 0;
    }
    return frame;
  }

  /** A popped receive chain if it can hold data, else undefined (returned with length 0, logged). */
  private usableRxChain(rxq: SplitQueue, popped: PoppedChain): DescriptorChain | undefined {
    let problem: string | undefined;
    if (popped.kind === 'invalid') problem = popped.error.message;
    else if (popped.readableCount > 0) problem = `${this.name}: receive chain at head ${popped.head} has device-readable descriptors`;
    else {
      // With MRG_RXBUF each buffer must hold at least the header (§5.1.6.3.1); without it a chain must
      // hold a header and an Ethernet header to ever take a frame.
      const min = this.mergeable ? NET_HDR.SIZE : NET_HDR.SIZE + ETH_HLEN;
      if (popped.writableLength < min) problem = `${this.name}: receive chain at head ${popped.head} has ${popped.writableLength} writable bytes, less than ${min}`;
    }
    if (problem === undefined) return popped as DescriptorChain;
    this.stats.rxBadChains++;
    this.log.warn(`${problem}; returned unused`);
    rxq.addUsed(popped, 0);
    return undefined;
  }

  private fillRx(): void {
    const rxq = this.rxq;
    if (!this.active || rxq === undefined || !rxq.isLive) return;
    let frames = 0;
    let chains = 0;
    let more = false;
    while (this.rxQueuedFrames > 0) {
      if (frames >= PACKETS_PER_TURN) {
        more = true;
        break;
      }
      const frame = this.rxQueue[this.rxHead];
      const need = NET_HDR.SIZE + frame.length;
      let starved = false;
      while (this.mergeable ? this.rxHeldCapacity < need : this.rxHeld.length === 0) {
        if (chains >= RX_CHAINS_PER_TURN) {
          more = true;
          break;
        }
        const popped = rxq.pop();
        if (popped === null) {
          starved = true; // the guest notifies when it posts more buffers
          break;
        }
        chains++;
        const chain = this.usableRxChain(rxq, popped);
        if (chain !== undefined) {
          this.rxHeld.push(chain);
          this.rxHeldCapacity += chain.writableLength;
          this.rxHeldDescriptors += chain.buffers.length;
        }
      }
      if (more) break;
      if (starved) {
        // The chains we hold take every descriptor of the ring and the frame still does not fit: the
        // guest cannot post more, so it never will. (Counting an indirect chain's table entries can only
        // make this come early, dropping a frame a guest with indirect receive chains might have taken.)
        if (this.mergeable && this.rxHeld.length > 0 && this.rxHeldDescriptors >= rxq.size) {
          this.dropHeadFrame(`needs ${need} bytes, more than the ${this.rxHeld.length} receive chains holding every descriptor of the ring (${this.rxHeldCapacity} bytes)`);
          frames++;
          continue;
        }
        break;
      }
      if (!this.mergeable && this.rxHeld[0].writableLength < need) {
        this.dropHeadFrame(`needs ${need} bytes, the receive chain at head ${this.rxHeld[0].head} holds ${this.rxHeld[0].writableLength} (without MRG_RXBUF a frame takes one chain)`);
        frames++;
        continue;
      }
      this.writeFrame(rxq, this.shiftRx());
      frames++;
    }
    if (more) this.scheduleRx();
    rxq.interruptIfNeeded();
    this.maybeResume();
  }

  private dropHeadFrame(why: string): void {
    const frame = this.shiftRx();
    this.stats.rxDropped++;
    this.stats.rxTooBig++;
    this.log.warn(`${this.name}: a ${frame.length}-byte frame for the guest ${why}; dropped`);
  }

  /** Write header + frame into the held chains (as many as it takes) and put them on the used ring. */
  private writeFrame(rxq: SplitQueue, frame: Uint8Array): void {
    const need = NET_HDR.SIZE + frame.length;
    let count = 0;
    for (let capacity = 0; capacity < need; count++) capacity += this.rxHeld[count].writableLength;
    encodeNetHeader({ numBuffers: count }, this.hdrOut); // flags 0, GSO_NONE: no offloads
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const chain = this.rxHeld[i];
      const writer = chain.writer();
      if (i === 0) writer.write(this.hdrOut);
      offset += writer.write(frame.subarray(offset));
      this.rxHeldCapacity -= chain.writableLength;
      this.rxHeldDescriptors -= chain.buffers.length;
      rxq.addUsed(chain, writer.written);
    }
    this.rxHeld = count === this.rxHeld.length ? [] : this.rxHeld.slice(count);
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
  }
}
