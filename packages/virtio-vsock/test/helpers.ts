import { concat, sameBytes } from '../../../scripts/test/bytes.js';
import { type BufSpec, FakeClock, type UsedElem, VirtioTestDriver, type VirtioTestDriverOptions, chainBuffersOf } from '@hype/virtio/testing';
import {
  VMADDR_CID_HOST,
  VSOCK_EVENT,
  VSOCK_HDR,
  VsockDevice,
  type VsockDeviceOptions,
  type VsockHeader,
  type VsockHeaderFields,
  VsockQueue,
  VsockType,
  decodeHeader,
  encodeHeader,
} from '../src/index.js';

/** A packet as the guest sees it in an rx buffer. */
export interface Packet extends VsockHeader {
  payload: Uint8Array;
}

export type SendFields = Partial<VsockHeaderFields> & Pick<VsockHeaderFields, 'op'>;

export const GUEST_BUF_ALLOC = 64 * 1024;
export const RX_BUF = VSOCK_HDR.SIZE + 4096;

/** The guest's side of the three queues, packet by packet (no state machine: tests script it). */
export class TestGuest {
  constructor(
    readonly drv: VirtioTestDriver,
    public cid = 3,
  ) {}

  /** Post `count` rx buffers of `size` writable bytes (one descriptor each). Returns their heads. */
  postRx(count = 1, size = RX_BUF, notify = true): number[] {
    const heads: number[] = [];
    for (let i = 0; i < count; i++) heads.push(this.drv.queue(VsockQueue.RX).addChain([this.drv.writable(size, 0xee)]));
    if (notify && count > 0) this.drv.notify(VsockQueue.RX);
    return heads;
  }

  /** Post one rx chain of the given buffers. */
  postRxChain(buffers: BufSpec[], notify = true): number {
    const head = this.drv.queue(VsockQueue.RX).addChain(buffers);
    if (notify) this.drv.notify(VsockQueue.RX);
    return head;
  }

  /** Header bytes for `fields` (defaults: guest → host stream packet, len = payload length). */
  header(fields: SendFields, payloadLength = 0): Uint8Array {
    return encodeHeader({
      srcCid: this.cid,
      dstCid: VMADDR_CID_HOST,
      srcPort: 0,
      dstPort: 0,
      len: payloadLength,
      type: VsockType.STREAM,
      flags: 0,
      bufAlloc: GUEST_BUF_ALLOC,
      fwdCnt: 0,
      ...fields,
    });
  }

  /**
   * Send one packet on tx: header and payload in one device-readable buffer (or two with `split`).
   * Notifies unless `notify` is false. Returns the head.
   */
  send(fields: SendFields, payload: Uint8Array = new Uint8Array(0), options: { notify?: boolean; split?: boolean } = {}): number {
    const hdr = this.header(fields, payload.length);
    let buffers: BufSpec[];
    if (options.split) {
      buffers = [this.drv.readable(hdr)];
      if (payload.length > 0) buffers.push(this.drv.readable(payload));
    } else {
      const bytes = new Uint8Array(hdr.length + payload.length);
      bytes.set(hdr);
      bytes.set(payload, hdr.length);
      buffers = [this.drv.readable(bytes)];
    }
    const head = this.drv.queue(VsockQueue.TX).addChain(buffers);
    if (options.notify ?? true) this.drv.notify(VsockQueue.TX);
    return head;
  }

  /** Send raw bytes as one tx chain. */
  sendRaw(bytes: Uint8Array | BufSpec[], notify = true): number {
    const buffers = bytes instanceof Uint8Array ? [this.drv.readable(bytes)] : bytes;
    const head = this.drv.queue(VsockQueue.TX).addChain(buffers);
    if (notify) this.drv.notify(VsockQueue.TX);
    return head;
  }

  /** tx chains the device returned. */
  takeTxUsed(): UsedElem[] {
    return this.drv.takeUsed(VsockQueue.TX);
  }

  /** The rx used elements since the last call, raw. */
  takeRxUsed(): UsedElem[] {
    return this.drv.takeUsed(VsockQueue.RX);
  }

  /** Packets the device wrote into rx buffers since the last call (empty used elements skipped). */
  takeRx(): Packet[] {
    return this.takeRxUsed()
      .filter((u) => u.len > 0)
      .map((u) => parsePacket(this.drv.writtenBytes(u)));
  }

  postEvent(count = 1, size: number = VSOCK_EVENT.SIZE): void {
    for (let i = 0; i < count; i++) this.drv.queue(VsockQueue.EVENT).addChain([this.drv.writable(size, 0xee)]);
    this.drv.notify(VsockQueue.EVENT);
  }

  /** Event ids the device delivered since the last call. */
  takeEvents(): number[] {
    return this.drv.takeUsed(VsockQueue.EVENT).map((u) => {
      const bytes = this.drv.writtenBytes(u);
      return bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) : -1;
    });
  }
}

export function parsePacket(bytes: Uint8Array): Packet {
  if (bytes.length < VSOCK_HDR.SIZE) throw new Error(`rx packet of ${bytes.length} bytes is shorter than a header`);
  const h = decodeHeader(bytes) as Packet;
  h.payload = bytes.slice(VSOCK_HDR.SIZE);
  if (h.payload.length !== h.len) throw new Error(`rx packet: len ${h.len} but ${h.payload.length} payload bytes written`);
  return h;
}

/** The buffers of a used element (from takeUsed), for checks. */
export function buffersOf(elem: UsedElem): readonly BufSpec[] {
  const b = chainBuffersOf(elem);
  if (b === undefined) throw new Error('not a harness chain');
  return b;
}

export interface Rig {
  drv: VirtioTestDriver;
  device: VsockDevice;
  time: FakeClock;
  guest: TestGuest;
  /** Run every deferred turn. */
  flush(): void;
}

/** A VsockDevice with fake time behind the real transport, initialised. */
export function rig(options: Partial<VsockDeviceOptions> = {}, driverOptions: VirtioTestDriverOptions = {}): Rig {
  const time = new FakeClock();
  const device = new VsockDevice({ setTimer: time.setTimer, clearTimer: time.clearTimer, defer: time.defer, ...options });
  const drv = new VirtioTestDriver(device, { ramSize: 16 << 20, queueSize: 128, ...driverOptions });
  drv.init();
  const guest = new TestGuest(drv, device.guestCid);
  return { drv, device, time, guest, flush: () => time.runDeferred() };
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Bytes 0, 1, 2, ... (mod 251) from `start`: a pattern whose order is checkable. */
export function pattern(length: number, start = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (start + i) % 251;
  return out;
}

export { concat, sameBytes };
