import { concat, sameBytes } from '../../../scripts/test/bytes.js';
import { Feature, featureMask } from '@hype/virtio';
import { type BufSpec, FakeClock, type UsedElem, VirtioTestDriver, type VirtioTestDriverOptions } from '@hype/virtio/testing';
import {
  ETH_HLEN,
  Listeners,
  NET_HDR,
  type NetBackend,
  type NetHeader,
  NetFeature,
  NetQueue,
  VirtioNetDevice,
  type VirtioNetDeviceOptions,
  decodeNetHeader,
  encodeNetHeader,
} from '../src/index.js';

/**
 * A backend the test drives: records what the device sends, answers `send` with false once `capacity`
 * frames were sent since the last `writable()`, delivers frames with `emit`, and records pause/resume.
 */
export class ScriptedBackend implements NetBackend {
  readonly sent: Uint8Array[] = [];
  /** send() calls since the last writable() that returned true; false once this reaches capacity. */
  capacity = Infinity;
  private sinceWritable = 0;
  paused = false;
  pauses = 0;
  resumes = 0;
  closes = 0;
  /** send() throws while set. */
  throwOnSend = false;
  private readonly frames = new Listeners<[Uint8Array]>();
  private readonly writables = new Listeners<[]>();
  private readonly closeListeners = new Listeners<[Error | undefined]>();

  /** send() calls after one returned false and before writable(): the device broke backpressure. */
  sendsWhileFull = 0;
  private saidFull = false;

  send(frame: Uint8Array): boolean {
    if (this.throwOnSend) throw new Error('scripted send failure');
    if (this.saidFull) this.sendsWhileFull++;
    this.sent.push(frame);
    this.sinceWritable++;
    this.saidFull = this.sinceWritable >= this.capacity;
    return !this.saidFull;
  }
  onFrame(cb: (frame: Uint8Array) => void): () => void {
    return this.frames.add(cb);
  }
  onWritable(cb: () => void): () => void {
    return this.writables.add(cb);
  }
  onClose(cb: (error?: Error) => void): () => void {
    return this.closeListeners.add(cb);
  }
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
  close(): void {
    this.closes++;
  }

  /** Deliver a frame to the device (as the network would). */
  emit(frame: Uint8Array): void {
    this.frames.emit(frame);
  }
  /** The backend can take frames again. */
  writable(): void {
    this.sinceWritable = 0;
    this.saidFull = false;
    this.writables.emit();
  }
  /** The backend went away. */
  fail(error?: Error): void {
    this.closeListeners.emit(error);
  }
  get listenerCount(): number {
    return this.frames.size + this.writables.size + this.closeListeners.size;
  }
}

/** A frame of `length` bytes: destination, source MAC, EtherType 0x88b5 (local experimental), then a pattern from `seed`. */
export function makeFrame(length: number, seed = 0): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (seed * 31 + i * 7 + 3) & 0xff;
  if (length >= ETH_HLEN) {
    f.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x88, 0xb5]);
  }
  return f;
}

export { concat, sameBytes };

/** A frame as the guest received it. */
export interface Received {
  header: NetHeader;
  frame: Uint8Array;
  /** The used elements it took (num_buffers of them). */
  elems: UsedElem[];
}

export const RX_BUF = NET_HDR.SIZE + 1518;

export interface Rig {
  drv: VirtioTestDriver;
  device: VirtioNetDevice;
  backend: ScriptedBackend;
  time: FakeClock;
  warnings: string[];
  /** Run every deferred turn. */
  flush(): void;
  /** Post `count` receive chains of `size` writable bytes (one descriptor each), and notify. */
  postRx(count?: number, size?: number, notify?: boolean): number[];
  /** Post one receive chain of the given buffers. */
  postRxChain(buffers: BufSpec[], notify?: boolean): number;
  /** Transmit one frame: header (default: zeros) then the frame, in one readable buffer (or `split` at these offsets). */
  transmit(frame: Uint8Array, options?: { header?: Partial<NetHeader>; split?: number[]; notify?: boolean }): number;
  /** Transmit a raw chain. */
  transmitRaw(buffers: BufSpec[], notify?: boolean): number;
  /** The frames the guest received since the last call (grouping merged buffers by num_buffers). */
  takeRx(): Received[];
}

/** A VirtioNetDevice over a ScriptedBackend with fake time, behind the real transport, initialised. */
export function rig(
  options: Partial<VirtioNetDeviceOptions> & { mergeable?: boolean } = {},
  driverOptions: VirtioTestDriverOptions = {},
): Rig {
  const time = new FakeClock();
  const backend = (options.backend as ScriptedBackend | undefined) ?? new ScriptedBackend();
  const warnings: string[] = [];
  const device = new VirtioNetDevice({
    mac: '52:54:00:12:34:56',
    defer: time.defer,
    logger: { warn: (m) => warnings.push(m) },
    ...options,
    backend,
  });
  const acceptMask = options.mergeable === false ? ~featureMask(NetFeature.MRG_RXBUF) : ~0n;
  const drv = new VirtioTestDriver(device, { ramSize: 16 << 20, queueSize: 64, acceptMask, ...driverOptions });
  drv.init();
  const r: Rig = {
    drv,
    device,
    backend,
    time,
    warnings,
    flush: () => time.runDeferred(),
    postRx(count = 1, size = RX_BUF, notify = true) {
      const heads: number[] = [];
      for (let i = 0; i < count; i++) heads.push(drv.queue(NetQueue.RX).addChain([drv.writable(size, 0xee)]));
      if (notify && count > 0) drv.notify(NetQueue.RX);
      return heads;
    },
    postRxChain(buffers, notify = true) {
      const head = drv.queue(NetQueue.RX).addChain(buffers);
      if (notify) drv.notify(NetQueue.RX);
      return head;
    },
    transmit(frame, opts = {}) {
      const bytes = concat([encodeNetHeader(opts.header ?? {}), frame]);
      const cuts = [0, ...(opts.split ?? []), bytes.length];
      const buffers: BufSpec[] = [];
      for (let i = 0; i + 1 < cuts.length; i++) buffers.push(drv.readable(bytes.slice(cuts[i], cuts[i + 1])));
      return r.transmitRaw(buffers, opts.notify);
    },
    transmitRaw(buffers, notify = true) {
      const head = drv.queue(NetQueue.TX).addChain(buffers);
      if (notify) drv.notify(NetQueue.TX);
      return head;
    },
    takeRx() {
      return groupReceived(drv.takeUsed(NetQueue.RX), (u) => drv.writtenBytes(u));
    },
  };
  return r;
}

/** Group used receive elements into frames by num_buffers (elements of length 0 are skipped). */
export function groupReceived(used: UsedElem[], bytesOf: (u: UsedElem) => Uint8Array): Received[] {
  const out: Received[] = [];
  for (let i = 0; i < used.length; ) {
    const first = used[i];
    if (first.len === 0) {
      i++;
      continue;
    }
    const firstBytes = bytesOf(first);
    if (firstBytes.length < NET_HDR.SIZE) throw new Error(`receive buffer with ${firstBytes.length} bytes, less than a header`);
    const header = decodeNetHeader(firstBytes);
    const n = Math.max(1, header.numBuffers);
    const elems = used.slice(i, i + n);
    if (elems.length < n) throw new Error(`num_buffers ${n} but only ${elems.length} used elements follow`);
    const frame = concat([firstBytes.subarray(NET_HDR.SIZE), ...elems.slice(1).map(bytesOf)]);
    out.push({ header, frame, elems });
    i += n;
  }
  return out;
}

/** Everything the transport adds (VERSION_1) plus the device's own offer. */
export const VERSION_1 = featureMask(Feature.VERSION_1);

/** Nothing threw out of the device and it never asked for a reset. */
export function healthy(r: Rig): boolean {
  const bad = (w: string) => w.includes('threw') || w.includes('needs reset') || w.includes('failed');
  return !r.drv.needsReset && !r.drv.warnings.some(bad) && !r.warnings.some(bad) && r.backend.sendsWhileFull === 0;
}
