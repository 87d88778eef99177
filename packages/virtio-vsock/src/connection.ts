import type { ChainReader, ChainWriter, VirtioLogger } from '@hype/virtio';
import { ByteQueue } from './byte-queue.js';
import { VsockError } from './errors.js';
import { VsockOp, VsockShutdown } from './layout.js';

/** What a connection needs from the device that owns it. @internal */
export interface ConnectionOwner {
  /** The host's receive buffer per connection: advertised as `buf_alloc` on every packet. */
  readonly bufAlloc: number;
  /** Consumed bytes not yet advertised that trigger a CREDIT_UPDATE (see `maybeCreditUpdate`). */
  readonly creditUpdateThreshold: number;
  readonly sendHighWaterMark: number;
  readonly sendQueueLimit: number;
  readonly closeTimeoutMs: number;
  readonly log: VirtioLogger;
  /** The connection has (or may have) a packet for the guest: schedule an rx pass. */
  markReady(conn: VsockConnection): void;
  /** The connection's bookkeeping may have changed (finished, RST sent, drained): update the tables. */
  settle(conn: VsockConnection): void;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
  defer(callback: () => void): void;
  /** Run host-side code (a timer) that must not throw out of the device. */
  safely(what: string, fn: () => void): void;
}

/**
 * Where a connection is in its life, as the guest sees it:
 * - `accepting`: the guest sent REQUEST; the host's listener has not decided yet.
 * - `requesting`: `connect()` from the host; REQUEST queued or sent, no RESPONSE yet.
 * - `open`: established (for an accepted guest connection, from the moment RESPONSE is queued).
 * - `done`: finished for the guest (RST sent, queued or received; or a reset). The host side may still
 *   be reading what the guest sent before a clean close.
 */
export type ConnectionPhase = 'accepting' | 'requesting' | 'open' | 'done';

/** What `produce` put in a packet. @internal */
export interface Produced {
  readonly op: number;
  readonly flags: number;
  readonly len: number;
}

type Listeners = {
  data: Array<(bytes: Uint8Array) => void>;
  end: Array<() => void>;
  drain: Array<() => void>;
  close: Array<(error?: Error) => void>;
};

export interface VsockConnectionInit {
  readonly initiator: 'host' | 'guest';
  readonly localPort: number;
  readonly remotePort: number;
  readonly remoteCid: number;
}

/**
 * One stream connection between a host port (`localPort`, on CID 2) and a guest port (`remotePort`),
 * host side. Made by `VsockDevice.connect()` (host-initiated) or handed to a `listen()` callback
 * (guest-initiated). Callbacks run on the device's thread; one that throws is logged and ignored.
 *
 * Backpressure: `write()` returns false once `writableLength` reaches the device's
 * `sendHighWaterMark`; wait for `onDrain`. The guest's credit decides how fast queued bytes leave.
 * Writes that would take `writableLength` above `sendQueueLimit` destroy the connection with `ENOBUFS`.
 * Guest data is delivered through `onData` while not paused and once a data callback exists; bytes not
 * delivered stay in the connection's receive buffer (at most the advertised `buf_alloc`, which the
 * guest's credit bounds) and the guest is not granted more credit until they are.
 */
export class VsockConnection {
  readonly initiator: 'host' | 'guest';
  /** The host's port (for host-initiated connections, the one the device assigned). */
  readonly localPort: number;
  /** The guest's port. */
  readonly remotePort: number;
  /** The guest's CID when the connection was made. */
  readonly remoteCid: number;

  /** @internal */ readonly key: number;
  /** @internal */ phase: ConnectionPhase;

  private readonly owner: ConnectionOwner;
  private readonly send = new ByteQueue();
  private readonly recv = new ByteQueue();
  private readonly listeners: Listeners = { data: [], end: [], drain: [], close: [] };

  // Control packets owed to the guest (at most one of each: a connection never queues more).
  private requestPending = false;
  private requestSent = false;
  private responsePending = false;
  private rstPending = false;
  private creditUpdatePending = false;
  private creditRequested = false;

  // Shutdown state.
  private peerShutRecv = false;
  private peerShutSend = false;
  private endRequested = false;
  private closeRequested = false;
  private shutdownSent = 0;

  // Credit, host → guest (what the guest told us).
  private peerBufAlloc = 0;
  private peerFwdCnt = 0;
  private txCnt = 0;
  // Credit, guest → host (what we tell the guest).
  private rxCnt = 0;
  private fwdCnt = 0;
  private lastFwdSent = 0;

  private paused = false;
  private flushing = false;
  private needDrain = false;
  private endEmitted = false;
  private hostClosed = false;
  private closeError: Error | undefined;
  private timer: { handle: unknown } | undefined;
  private waiter: { resolve: (c: VsockConnection) => void; reject: (e: Error) => void } | undefined;
  /** @internal Resolves when a host-initiated connection is established. */
  readonly established: Promise<VsockConnection> | undefined;

  /** @internal */
  constructor(owner: ConnectionOwner, init: VsockConnectionInit) {
    this.owner = owner;
    this.initiator = init.initiator;
    this.localPort = init.localPort >>> 0;
    this.remotePort = init.remotePort >>> 0;
    this.remoteCid = init.remoteCid >>> 0;
    this.key = connectionKey(this.localPort, this.remotePort);
    if (init.initiator === 'host') {
      this.phase = 'requesting';
      this.requestPending = true;
      this.established = new Promise((resolve, reject) => {
        this.waiter = { resolve, reject };
      });
    } else {
      this.phase = 'accepting';
    }
  }

  // ---- host API ------------------------------------------------------------------------------------

  /** `connecting` until established, `open`, `closing` after `close()` until the end, then `closed`. */
  get state(): 'connecting' | 'open' | 'closing' | 'closed' {
    if (this.hostClosed) return 'closed';
    if (this.phase === 'accepting' || this.phase === 'requesting') return 'connecting';
    if (this.closeRequested || this.phase === 'done') return 'closing';
    return 'open';
  }

  /** Host writes are still accepted (not ended, closed, destroyed, and the guest still receives). */
  get writable(): boolean {
    return !this.hostClosed && this.phase !== 'done' && !this.endRequested && !this.closeRequested && !this.peerShutRecv;
  }

  /** Host bytes queued for the guest (not yet in a guest buffer). */
  get writableLength(): number {
    return this.send.length;
  }

  /** `write()` returns false once `writableLength` reaches this (the device's `sendHighWaterMark`). */
  get writableHighWaterMark(): number {
    return this.owner.sendHighWaterMark;
  }

  /** A write that would take `writableLength` above this destroys the connection (`sendQueueLimit`). */
  get writableLimit(): number {
    return this.owner.sendQueueLimit;
  }

  /** Guest bytes received and not yet delivered to a data callback. */
  get readableLength(): number {
    return this.recv.length;
  }

  /** Bytes the guest can take now according to its last credit information. */
  get peerCredit(): number {
    const inFlight = (this.txCnt - this.peerFwdCnt) >>> 0;
    return inFlight > this.peerBufAlloc ? 0 : this.peerBufAlloc - inFlight;
  }

  /** Bytes of guest data consumed by the host so far (the `fwd_cnt` the host advertises), mod 2^32. */
  get forwardCount(): number {
    return this.fwdCnt;
  }

  /** The guest said it sends no more (SHUTDOWN with SEND); `onEnd` follows once its data is delivered. */
  get remoteEnded(): boolean {
    return this.peerShutSend;
  }

  /**
   * Queue `bytes` (copied) for the guest. Returns false when the queue reached the high-water mark (wait
   * for `onDrain`), and false without queueing when the connection no longer takes writes (`writable`
   * is false: ended, closed, reset, or the guest shut down its receive side). Writes beyond the hard
   * `sendQueueLimit` destroy the connection with `ENOBUFS`.
   */
  write(bytes: Uint8Array): boolean {
    if (!this.writable) return false;
    if (bytes.length === 0) return !this.needDrain;
    if (this.send.length + bytes.length > this.owner.sendQueueLimit) {
      this.destroy(
        new VsockError(
          'ENOBUFS',
          `vsock ${this.describe()}: ${this.send.length + bytes.length} bytes queued for the guest, above the limit of ${this.owner.sendQueueLimit} (the writer ignored write() === false)`,
        ),
      );
      return false;
    }
    this.send.push(bytes);
    this.owner.markReady(this);
    if (this.send.length >= this.owner.sendHighWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /** Half-close: the host sends no more. SHUTDOWN(SEND) goes to the guest after the queued bytes. */
  end(): void {
    if (this.hostClosed || this.phase === 'done' || this.endRequested || this.closeRequested) return;
    this.endRequested = true;
    this.owner.markReady(this);
  }

  /**
   * Graceful close: queued bytes go out, then SHUTDOWN(RCV|SEND); the connection ends when the guest
   * answers with RST or after the device's `closeTimeoutMs`, when the host sends RST itself. Guest data
   * not yet delivered is dropped. Before the connection is established this is `destroy()`.
   */
  close(): void {
    if (this.hostClosed) return;
    if (this.phase === 'done') {
      // The guest side is already finished (a clean close while data waited for the host): stop reading.
      this.recv.clear();
      this.finish(undefined);
      this.owner.settle(this);
      return;
    }
    if (this.phase !== 'open') {
      this.abort(new VsockError('ECONNABORTED', `vsock ${this.describe()}: closed by the host before it was established`));
      return;
    }
    if (this.closeRequested) return;
    this.closeRequested = true;
    this.recv.clear();
    if (this.peerShutSend && this.peerShutRecv) {
      // The guest already closed both directions: nothing to wait for.
      this.resetGracefully();
      return;
    }
    this.owner.markReady(this);
  }

  /** Abort: RST to the guest now, queued and unread bytes dropped, `onClose(error)`. */
  destroy(error?: Error): void {
    if (this.hostClosed) return;
    this.abort(error);
  }

  /** Stop delivering guest data (it is kept, and the guest gets no more credit until `resume`). */
  pause(): void {
    this.paused = true;
  }

  /** Deliver guest data again. */
  resume(): void {
    this.paused = false;
    this.flushRecv();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Guest bytes, in order. Delivery starts once a data callback exists. Returns an unsubscribe function. */
  onData(callback: (bytes: Uint8Array) => void): () => void {
    const first = this.listeners.data.length === 0;
    const off = this.subscribe(this.listeners.data, callback);
    if (first && this.recv.length > 0) this.owner.defer(() => this.owner.safely('delivering guest data', () => this.flushRecv()));
    return off;
  }

  /** The guest shut down its sending side and every byte it sent has been delivered. */
  onEnd(callback: () => void): () => void {
    return this.subscribe(this.listeners.end, callback);
  }

  /** The send queue fell below the high-water mark after `write()` returned false. */
  onDrain(callback: () => void): () => void {
    return this.subscribe(this.listeners.drain, callback);
  }

  /**
   * The connection is finished for the host: `error` undefined after a clean close, else a `VsockError`
   * (or the error given to `destroy`). Called once; a callback added afterwards is called on a later turn.
   */
  onClose(callback: (error?: Error) => void): () => void {
    if (this.hostClosed) {
      const error = this.closeError;
      this.owner.defer(() => this.call('close', () => callback(error)));
      return () => {};
    }
    return this.subscribe(this.listeners.close, callback);
  }

  // ---- device side (internal) ----------------------------------------------------------------------

  /** @internal The host listener accepted a guest-initiated connection: RESPONSE goes out next. */
  accept(): void {
    if (this.phase !== 'accepting' || this.hostClosed) return;
    this.clearTimer();
    this.phase = 'open';
    this.responsePending = true;
    this.owner.markReady(this);
  }

  /** @internal The host listener refused (or did not answer): RST to the guest. */
  refuse(error?: Error): void {
    if (this.phase !== 'accepting') return;
    this.abort(error);
  }

  /** @internal Arm the handshake timer (accept or connect timeout). */
  armHandshakeTimer(ms: number, error: () => VsockError): void {
    this.armTimer(ms, () => {
      if (this.phase === 'accepting' || this.phase === 'requesting') this.abort(error());
    });
  }

  /** @internal Every guest packet carries its credit information. */
  peerCreditInfo(bufAlloc: number, fwdCnt: number): void {
    this.peerBufAlloc = bufAlloc >>> 0;
    this.peerFwdCnt = fwdCnt >>> 0;
    this.creditRequested = false;
    if (this.send.length > 0) this.owner.markReady(this);
  }

  /** @internal RESPONSE from the guest. False if unexpected (not waiting for one). */
  peerResponse(): boolean {
    if (this.phase !== 'requesting' || !this.requestSent) return false;
    this.clearTimer();
    this.phase = 'open';
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(this);
    this.owner.markReady(this);
    return true;
  }

  /** @internal CREDIT_REQUEST from the guest: answer with our credit. */
  peerCreditRequest(): void {
    if (this.phase !== 'open') return;
    this.creditUpdatePending = true;
    this.owner.markReady(this);
  }

  /** @internal SHUTDOWN from the guest (flags accumulate; unknown bits ignored). */
  peerShutdown(flags: number): void {
    if (this.phase !== 'open') return;
    if ((flags & VsockShutdown.RCV) !== 0 && !this.peerShutRecv) {
      this.peerShutRecv = true;
      this.send.clear();
      if (this.needDrain) {
        // A writer waiting for 'drain' learns (through `writable`) that nothing more goes out.
        this.needDrain = false;
        this.emit('drain');
      }
      this.owner.markReady(this);
    }
    if ((flags & VsockShutdown.SEND) !== 0) this.peerShutSend = true;
    this.flushRecv();
  }

  /** @internal RST from the guest. */
  peerRst(): void {
    if (this.phase === 'done') return;
    this.clearTimer();
    const wasRequesting = this.phase === 'requesting';
    const clean = this.closeRequested || (this.peerShutSend && (this.peerShutRecv || (this.shutdownSent & VsockShutdown.SEND) !== 0));
    this.phase = 'done';
    this.rstPending = false;
    this.requestPending = false;
    this.responsePending = false;
    this.creditUpdatePending = false;
    this.send.clear();
    if (wasRequesting) {
      this.finish(new VsockError('ECONNREFUSED', `vsock ${this.describe()}: the guest refused the connection (RST)`));
    } else if (!clean) {
      this.recv.clear();
      this.finish(new VsockError('ECONNRESET', `vsock ${this.describe()}: connection reset by the guest`));
    } else {
      this.flushRecv(); // delivers what is left, then `end` and `close`
    }
    this.owner.settle(this);
  }

  /** @internal Would `len` more bytes from the guest exceed the credit we advertised? */
  wouldOverrun(len: number): boolean {
    return ((this.rxCnt - this.lastFwdSent) >>> 0) + len > this.owner.bufAlloc;
  }

  /** @internal Whether RW from the guest is acceptable now (open, guest has not shut down sending). */
  get acceptsData(): boolean {
    return this.phase === 'open' && !this.responsePending && !this.peerShutSend;
  }

  /** @internal RW payload from the guest (the caller checked `acceptsData` and `wouldOverrun`). */
  receive(reader: ChainReader, len: number): void {
    this.rxCnt = (this.rxCnt + len) >>> 0;
    if (this.closeRequested || this.hostClosed) {
      // Nobody reads any more: count it as consumed so the guest is not stalled meanwhile.
      reader.skip(len);
      this.fwdCnt = (this.fwdCnt + len) >>> 0;
      this.maybeCreditUpdate();
      return;
    }
    this.recv.pushFrom(reader, len);
    this.flushRecv();
  }

  /** @internal Reset of the transport or the device: gone, no RST (the guest forgets it too). */
  kill(error: Error): void {
    this.clearTimer();
    this.phase = 'done';
    this.rstPending = false;
    this.requestPending = false;
    this.responsePending = false;
    this.creditUpdatePending = false;
    this.send.clear();
    this.recv.clear();
    this.finish(error);
  }

  /** @internal The guest broke the protocol on this connection: RST it, the host sees `EPROTO`. */
  protocolError(message: string): void {
    if (this.phase === 'done') return;
    this.abort(new VsockError('EPROTO', `vsock ${this.describe()}: ${message}; connection reset`));
  }

  /** @internal Has a packet for the guest (an rx buffer would be used). */
  wantsRx(): boolean {
    if (this.phase === 'done') return this.rstPending;
    if (this.phase === 'accepting') return false;
    if (this.responsePending || this.requestPending || this.creditUpdatePending) return true;
    if (this.canSendData() && this.send.length > 0 && (this.peerCredit > 0 || !this.creditRequested)) return true;
    return this.shutdownWanted() !== 0;
  }

  /** @internal Still owes the guest an RST. */
  get owesRst(): boolean {
    return this.rstPending;
  }

  /** @internal The host side is finished (onClose fired). */
  get isClosed(): boolean {
    return this.hostClosed;
  }

  /**
   * @internal Fill one packet for the guest: the payload goes to `writer` (positioned after the header),
   * at most `payloadCap` bytes. The caller writes the header with `op`, `flags`, `len` and this
   * connection's `forwardCount` (read after this call), and calls `owner.settle` afterwards.
   */
  produce(writer: ChainWriter, payloadCap: number): Produced {
    // Every packet carries buf_alloc and fwd_cnt: whatever goes out is also a credit update.
    this.lastFwdSent = this.fwdCnt;
    this.creditUpdatePending = false;
    if (this.rstPending) {
      this.rstPending = false;
      return { op: VsockOp.RST, flags: 0, len: 0 };
    }
    if (this.responsePending) {
      this.responsePending = false;
      return { op: VsockOp.RESPONSE, flags: 0, len: 0 };
    }
    if (this.requestPending) {
      this.requestPending = false;
      this.requestSent = true;
      return { op: VsockOp.REQUEST, flags: 0, len: 0 };
    }
    if (this.canSendData() && this.send.length > 0) {
      const n = Math.min(this.send.length, this.peerCredit, payloadCap);
      if (n > 0) {
        const len = this.send.writeTo(writer, n);
        this.txCnt = (this.txCnt + len) >>> 0;
        if (this.needDrain && this.send.length < this.owner.sendHighWaterMark) {
          this.needDrain = false;
          this.emit('drain');
        }
        return { op: VsockOp.RW, flags: 0, len };
      }
    }
    const shutdown = this.shutdownWanted();
    if (shutdown !== 0) {
      this.shutdownSent = shutdown;
      if (this.closeRequested && (shutdown & VsockShutdown.BOTH) === VsockShutdown.BOTH) {
        // §5.10.6.4: wait for the guest's RST, then send one ourselves.
        this.armTimer(this.owner.closeTimeoutMs, () => this.closeTimedOut());
      }
      return { op: VsockOp.SHUTDOWN, flags: shutdown, len: 0 };
    }
    if (this.canSendData() && this.send.length > 0 && this.peerCredit === 0 && !this.creditRequested) {
      this.creditRequested = true;
      return { op: VsockOp.CREDIT_REQUEST, flags: 0, len: 0 };
    }
    // A credit update (asked for, due, or the only thing that fits a buffer without payload room).
    return { op: VsockOp.CREDIT_UPDATE, flags: 0, len: 0 };
  }

  /** `local:remote` for messages. */
  describe(): string {
    return `host port ${this.localPort} <-> guest ${this.remoteCid} port ${this.remotePort}`;
  }

  // ---- internals -----------------------------------------------------------------------------------

  private canSendData(): boolean {
    return this.phase === 'open' && !this.peerShutRecv;
  }

  /** SHUTDOWN flags to send now (all flags so far, cumulative), or 0. */
  private shutdownWanted(): number {
    if (this.phase !== 'open' || this.responsePending) return 0;
    const want = (this.endRequested ? VsockShutdown.SEND : 0) | (this.closeRequested ? VsockShutdown.BOTH : 0);
    if (want === 0 || (want & ~this.shutdownSent) === 0) return 0;
    if (this.send.length > 0 && !this.peerShutRecv) return 0; // queued bytes first
    return this.shutdownSent | want;
  }

  /** Abort: RST if the guest knows the connection, host sees `error`. */
  private abort(error: Error | undefined): void {
    this.clearTimer();
    this.send.clear();
    this.recv.clear();
    if (this.phase !== 'done') {
      const guestKnows = this.phase === 'open' || this.phase === 'accepting' || this.requestSent;
      this.phase = 'done';
      this.requestPending = false;
      this.responsePending = false;
      this.creditUpdatePending = false;
      this.rstPending = guestKnows;
      if (guestKnows) this.owner.markReady(this);
    }
    this.finish(error);
    this.owner.settle(this);
  }

  /** Both sides are done (or the guest did not answer our SHUTDOWN in time): RST, clean close. */
  private resetGracefully(): void {
    this.clearTimer();
    this.phase = 'done';
    this.rstPending = true;
    this.creditUpdatePending = false;
    this.send.clear();
    this.recv.clear();
    this.owner.markReady(this);
    this.finish(undefined);
    this.owner.settle(this);
  }

  private closeTimedOut(): void {
    if (this.phase === 'open') this.resetGracefully();
  }

  /** Deliver buffered guest data while allowed, then `end` / clean close when everything is delivered. */
  private flushRecv(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (!this.paused && !this.hostClosed && this.listeners.data.length > 0 && this.recv.length > 0) {
        const piece = this.recv.shift();
        if (piece === undefined) break;
        this.fwdCnt = (this.fwdCnt + piece.length) >>> 0;
        this.emit('data', piece);
      }
    } finally {
      this.flushing = false;
    }
    this.maybeCreditUpdate();
    if (this.recv.length > 0 || this.hostClosed) return;
    if (this.peerShutSend && !this.endEmitted) {
      this.endEmitted = true;
      this.emit('end');
    }
    if (this.hostClosed) return;
    if (this.phase === 'open' && this.peerShutSend && this.peerShutRecv) {
      // The guest closed both directions and everything it sent was delivered: RST closes it (§5.10.6.4).
      this.resetGracefully();
    } else if (this.phase === 'done') {
      // A clean close by the guest while data still waited for the host: now delivered.
      this.finish(undefined);
      this.owner.settle(this);
    }
  }

  /**
   * Tell the guest about freed buffer space when enough was consumed since the last packet, or when the
   * guest's view of our free space is getting small (so it never stalls on credit we already have).
   */
  private maybeCreditUpdate(): void {
    if (this.phase !== 'open' || this.peerShutSend) return;
    const unadvertised = (this.fwdCnt - this.lastFwdSent) >>> 0;
    if (unadvertised === 0) return;
    const guestViewFree = this.owner.bufAlloc - ((this.rxCnt - this.lastFwdSent) >>> 0);
    if (unadvertised >= this.owner.creditUpdateThreshold || guestViewFree < this.owner.creditUpdateThreshold) {
      if (!this.creditUpdatePending) {
        this.creditUpdatePending = true;
        this.owner.markReady(this);
      }
    }
  }

  /** Host-visible end: once. Rejects a pending connect. */
  private finish(error: Error | undefined): void {
    if (this.hostClosed) return;
    this.hostClosed = true;
    this.closeError = error;
    this.clearTimer();
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter !== undefined) {
      waiter.reject(error ?? new VsockError('ECONNABORTED', `vsock ${this.describe()}: closed before it was established`));
    }
    this.emit('close', error);
    this.listeners.data.length = 0;
    this.listeners.end.length = 0;
    this.listeners.drain.length = 0;
    this.listeners.close.length = 0;
  }

  private armTimer(ms: number, fn: () => void): void {
    this.clearTimer();
    const timer: { handle: unknown } = { handle: undefined };
    this.timer = timer;
    timer.handle = this.owner.setTimer(() => {
      if (this.timer !== timer) return;
      this.timer = undefined;
      this.owner.safely('running a connection timer', fn);
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer === undefined) return;
    const { handle } = this.timer;
    this.timer = undefined;
    this.owner.clearTimer(handle);
  }

  private subscribe<T>(list: T[], callback: T): () => void {
    if (typeof callback !== 'function') throw new TypeError('vsock: callback must be a function');
    if (this.hostClosed) return () => {};
    list.push(callback);
    return () => {
      const i = list.indexOf(callback);
      if (i >= 0) list.splice(i, 1);
    };
  }

  private emit(kind: 'data', bytes: Uint8Array): void;
  private emit(kind: 'end' | 'drain'): void;
  private emit(kind: 'close', error: Error | undefined): void;
  private emit(kind: keyof Listeners, arg?: Uint8Array | Error): void {
    const list = this.listeners[kind] as Array<(a?: unknown) => void>;
    for (const cb of list.slice()) this.call(kind, () => cb(arg));
  }

  private call(kind: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.owner.log.warn(`virtio-vsock: a host '${kind}' callback of ${this.describe()} threw: ${message}`);
    }
  }
}

/** One number per (host port, guest port) pair: both are u32, so the pair fits a float64 exactly. */
export function connectionKey(hostPort: number, guestPort: number): number {
  return (hostPort >>> 0) * 2 ** 32 + (guestPort >>> 0);
}
