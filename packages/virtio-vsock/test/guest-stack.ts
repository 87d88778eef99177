// A small guest-side vsock stack over VirtioTestDriver for end-to-end tests (the Duplex adapter, the
// Unix bridge): listens and connects, tracks credit both ways like Linux's virtio_transport_common,
// answers SHUTDOWN(RCV|SEND) with RST, and runs on real time (a 1 ms polling loop).
import type { BufSpec, VirtioTestDriver } from '@hype/virtio/testing';
import { VSOCK_HDR, VsockOp, VsockQueue, VsockShutdown } from '../src/index.js';
import { type Packet, TestGuest, parsePacket } from './helpers.js';

const CHUNK = 4096;

export class GuestConn {
  readonly received: Uint8Array[] = [];
  receivedBytes = 0;
  /** The host shut down sending. */
  ended = false;
  /** An RST arrived (or was sent). */
  closed = false;
  reset = false;
  /** Do not consume (no credit returned) while true. */
  paused = false;
  onData: ((bytes: Uint8Array) => void) | undefined;
  onEnd: (() => void) | undefined;
  onClose: ((reset: boolean) => void) | undefined;

  fwdCnt = 0;
  lastFwdSent = 0;
  unconsumed = 0;
  hostBufAlloc = 0;
  hostFwdCnt = 0;
  txCnt = 0;
  pending: Uint8Array[] = [];
  pendingBytes = 0;
  shutdownFlags = 0;
  shutdownSent = 0;

  constructor(
    readonly stack: GuestStack,
    readonly guestPort: number,
    readonly hostPort: number,
  ) {}

  get hostCredit(): number {
    return this.hostBufAlloc - (this.txCnt - this.hostFwdCnt);
  }

  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.length;
  }

  /** SHUTDOWN with `flags` once the pending bytes are out. */
  shutdown(flags: number = VsockShutdown.SEND): void {
    this.shutdownFlags |= flags;
  }

  rst(): void {
    if (this.closed) return;
    this.stack.sendPacket(this, VsockOp.RST);
    this.finish(false);
  }

  resume(): void {
    this.paused = false;
    this.fwdCnt += this.unconsumed;
    this.unconsumed = 0;
    this.stack.sendPacket(this, VsockOp.CREDIT_UPDATE);
  }

  text(): string {
    return Buffer.concat(this.received).toString();
  }

  finish(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.reset = reset;
    this.stack.forget(this);
    this.onClose?.(reset);
  }
}

export class GuestStack {
  readonly guest: TestGuest;
  readonly conns = new Map<string, GuestConn>();
  private readonly listeners = new Map<number, (conn: GuestConn) => void>();
  private readonly connecting = new Map<string, { resolve: (c: GuestConn) => void; reject: (e: Error) => void; conn: GuestConn }>();
  private rxBufs = new Map<number, BufSpec>();
  private nextPort = 50_000;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Every RST the stack received for a port pair it did not know. */
  readonly strayRsts: Packet[] = [];

  constructor(
    readonly drv: VirtioTestDriver,
    readonly options: { bufAlloc?: number; rxBuffers?: number; cid?: number } = {},
  ) {
    this.guest = new TestGuest(drv, options.cid ?? 3);
  }

  get bufAlloc(): number {
    return this.options.bufAlloc ?? 64 * 1024;
  }

  start(): void {
    const n = this.options.rxBuffers ?? 32;
    for (let i = 0; i < n; i++) {
      const buf = this.drv.writable(VSOCK_HDR.SIZE + CHUNK);
      const head = this.drv.queue(VsockQueue.RX).addChain([buf]);
      this.rxBufs.set(head, buf);
    }
    this.drv.notify(VsockQueue.RX);
    const loop = () => {
      this.pump();
      this.timer = setTimeout(loop, 1);
    };
    this.timer = setTimeout(loop, 1);
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  listen(port: number, onConnection: (conn: GuestConn) => void): void {
    this.listeners.set(port, onConnection);
  }

  connect(hostPort: number): Promise<GuestConn> {
    const conn = new GuestConn(this, this.nextPort++, hostPort);
    return new Promise((resolve, reject) => {
      this.connecting.set(key(conn.guestPort, hostPort), { resolve, reject, conn });
      this.sendPacket(conn, VsockOp.REQUEST);
    });
  }

  forget(conn: GuestConn): void {
    this.conns.delete(key(conn.guestPort, conn.hostPort));
  }

  sendPacket(conn: GuestConn, op: number, payload?: Uint8Array, flags = 0): void {
    this.guest.send({ op, srcPort: conn.guestPort, dstPort: conn.hostPort, bufAlloc: this.bufAlloc, fwdCnt: conn.fwdCnt, flags }, payload);
    conn.lastFwdSent = conn.fwdCnt;
    this.guest.takeTxUsed();
  }

  /** One round: read rx, answer, repost buffers, send what credit allows. */
  pump(): void {
    const used = this.drv.takeUsed(VsockQueue.RX);
    for (const u of used) {
      const buf = this.rxBufs.get(u.id);
      if (u.len > 0) this.dispatch(parsePacket(this.drv.writtenBytes(u)));
      if (buf !== undefined) {
        this.rxBufs.delete(u.id);
        this.rxBufs.set(this.drv.queue(VsockQueue.RX).addChain([buf]), buf);
      }
    }
    if (used.length > 0) this.drv.notify(VsockQueue.RX);
    for (const conn of [...this.conns.values()]) this.flush(conn);
    this.guest.takeTxUsed();
  }

  private flush(conn: GuestConn): void {
    while (conn.pendingBytes > 0 && conn.hostCredit > 0 && !conn.closed) {
      const n = Math.min(CHUNK, conn.hostCredit, conn.pendingBytes);
      const out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        const head = conn.pending[0];
        const take = Math.min(head.length, n - o);
        out.set(head.subarray(0, take), o);
        o += take;
        if (take === head.length) conn.pending.shift();
        else conn.pending[0] = head.subarray(take);
      }
      conn.pendingBytes -= n;
      conn.txCnt += n;
      this.sendPacket(conn, VsockOp.RW, out);
    }
    if (conn.pendingBytes === 0 && (conn.shutdownFlags & ~conn.shutdownSent) !== 0 && !conn.closed) {
      conn.shutdownSent |= conn.shutdownFlags;
      this.sendPacket(conn, VsockOp.SHUTDOWN, undefined, conn.shutdownSent);
    }
  }

  private dispatch(p: Packet): void {
    const k = key(p.dstPort, p.srcPort);
    const waiting = this.connecting.get(k);
    if (waiting !== undefined) {
      this.connecting.delete(k);
      if (p.op === VsockOp.RESPONSE) {
        waiting.conn.hostBufAlloc = p.bufAlloc;
        waiting.conn.hostFwdCnt = p.fwdCnt;
        this.conns.set(k, waiting.conn);
        waiting.resolve(waiting.conn);
      } else {
        waiting.reject(new Error(`guest connect to host port ${p.srcPort}: ${p.op === VsockOp.RST ? 'RST' : `op ${p.op}`}`));
      }
      return;
    }
    let conn = this.conns.get(k);
    if (conn === undefined) {
      if (p.op === VsockOp.REQUEST) {
        const listener = this.listeners.get(p.dstPort);
        conn = new GuestConn(this, p.dstPort, p.srcPort);
        if (listener === undefined) {
          this.sendPacket(conn, VsockOp.RST);
          return;
        }
        conn.hostBufAlloc = p.bufAlloc;
        conn.hostFwdCnt = p.fwdCnt;
        this.conns.set(k, conn);
        this.sendPacket(conn, VsockOp.RESPONSE);
        listener(conn);
      } else if (p.op === VsockOp.RST) {
        this.strayRsts.push(p);
      } else {
        this.sendPacket(new GuestConn(this, p.dstPort, p.srcPort), VsockOp.RST);
      }
      return;
    }
    conn.hostBufAlloc = p.bufAlloc;
    conn.hostFwdCnt = p.fwdCnt;
    switch (p.op) {
      case VsockOp.RW:
        conn.received.push(p.payload);
        conn.receivedBytes += p.len;
        if (conn.paused) conn.unconsumed += p.len;
        else conn.fwdCnt += p.len;
        conn.onData?.(p.payload);
        if (conn.fwdCnt - conn.lastFwdSent >= this.bufAlloc / 4) this.sendPacket(conn, VsockOp.CREDIT_UPDATE);
        break;
      case VsockOp.SHUTDOWN:
        if ((p.flags & VsockShutdown.SEND) !== 0 && !conn.ended) {
          conn.ended = true;
          conn.onEnd?.();
        }
        if ((p.flags & VsockShutdown.BOTH) === VsockShutdown.BOTH) conn.rst(); // as Linux, once nothing is unread
        break;
      case VsockOp.RST:
        conn.finish(true);
        break;
      case VsockOp.CREDIT_REQUEST:
        this.sendPacket(conn, VsockOp.CREDIT_UPDATE);
        break;
      default:
        break;
    }
  }
}

function key(guestPort: number, hostPort: number): string {
  return `${guestPort}:${hostPort}`;
}

/** Wait until `cond()` holds (polling every few ms), or fail after `ms`. */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
