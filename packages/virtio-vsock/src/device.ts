import {
  DeferredWork,
  nextTurn,
  type ActivationContext,
  type DescriptorChain,
  type SplitQueue,
  type VirtioDevice,
  type VirtioDeviceHost,
  type VirtioLogger,
  rateLimitedLogger,
  silentLogger,
} from '@hype/virtio';
import { type ConnectionOwner, VsockConnection, connectionKey } from './connection.js';
import { VsockError } from './errors.js';
import {
  VIRTIO_ID_VSOCK,
  VMADDR_CID_HOST,
  VMADDR_PORT_ANY,
  VSOCK_CONFIG,
  VSOCK_EVENT,
  VSOCK_HDR,
  VSOCK_OP_MAX,
  type VsockHeader,
  VsockEventId,
  VsockOp,
  VsockQueue,
  VsockType,
  decodeHeader,
  encodeHeader,
  opName,
} from './layout.js';

// ---- bounds (the guest is hostile: each caps what a guest can make the host hold or do) -------------

/** Guest CID when none is given. */
export const DEFAULT_GUEST_CID = 3;
/** Lowest guest CID: 0, 1 and 2 are the hypervisor, local and host (vm_sockets.h). */
export const MIN_GUEST_CID = 3;
/** Highest guest CID: 0xffffffff is VMADDR_CID_ANY; the spec uses only the low 32 bits of guest_cid. */
export const MAX_GUEST_CID = 0xffff_fffe;
/**
 * The host's receive buffer per connection, advertised as `buf_alloc`: the most guest bytes the host
 * holds for one connection (a guest sending beyond its credit is reset). Linux's default is the same.
 */
export const DEFAULT_BUF_ALLOC = 256 * 1024;
/** Largest payload of one packet, either direction (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
export const MAX_PACKET_PAYLOAD = 64 * 1024;
/** Connections at once (open, handshaking, closing, or holding undelivered guest data). */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/**
 * RST replies to packets that belong to no connection, waiting for rx buffers. When full, the device
 * stops taking packets from the tx queue until rx buffers drain it (nothing is dropped).
 */
export const DEFAULT_MAX_PENDING_RST = 256;
/** Packets taken from the tx queue, and packets written to the rx queue, per turn of the event loop. */
export const PACKETS_PER_TURN = 64;
/** `write()` returns false once this many host bytes wait for the guest. */
export const DEFAULT_SEND_HIGH_WATER_MARK = 64 * 1024;
/** Host bytes queued per connection beyond which a write destroys the connection (`ENOBUFS`). */
export const DEFAULT_SEND_QUEUE_LIMIT = 1024 * 1024;
/** How long `connect()` waits for the guest's RESPONSE (Firecracker and Linux use 2 s). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
/** How long an asynchronous listener may take to accept a guest connection before it is refused. */
export const DEFAULT_ACCEPT_TIMEOUT_MS = 5000;
/** After the host's SHUTDOWN(RCV|SEND), how long to wait for the guest's RST before sending one. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;
/** QueueNumMax of each of the three queues by default. */
export const DEFAULT_QUEUE_SIZE = 256;
/** Host ports assigned to host-initiated connections, round robin, as Firecracker does: [2^30, 2^31). */
export const HOST_PORT_FIRST = 2 ** 30;
export const HOST_PORT_END = 2 ** 31;
/** Longest timer (setTimeout's limit). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Called for each guest connection to a listening host port, before the guest gets its answer. Return
 * nothing (or anything but `false`) to accept: RESPONSE goes out. Return `false` (or throw) to refuse:
 * RST. A promise defers the answer until it settles (`false` or a rejection refuses), at most the
 * device's `acceptTimeoutMs`.
 */
export type VsockListener = (connection: VsockConnection) => void | boolean | Promise<void | boolean>;

export interface VsockDeviceOptions {
  /** The guest's CID, in [3, 0xfffffffe]. Default 3. */
  readonly guestCid?: number;
  /** QueueNumMax of rx, tx and event queues: a power of two in [1, 32768]. Default 256. */
  readonly queueSize?: number;
  /** Host receive buffer per connection (`buf_alloc`), in [4096, 64 MiB]. Default 256 KiB. */
  readonly bufAlloc?: number;
  /** Most connections at once, in [1, 65536]. Default 1024. */
  readonly maxConnections?: number;
  /** Most RST replies to connectionless packets waiting for rx buffers, in [1, 65536]. Default 256. */
  readonly maxPendingRst?: number;
  /** `write()` returns false at this many queued bytes. Default 64 KiB. */
  readonly sendHighWaterMark?: number;
  /** Hard cap of queued host bytes per connection (≥ the high-water mark). Default 1 MiB. */
  readonly sendQueueLimit?: number;
  readonly connectTimeoutMs?: number;
  readonly acceptTimeoutMs?: number;
  readonly closeTimeoutMs?: number;
  /** Starts a timer. Default `setTimeout`. */
  readonly setTimer?: (callback: () => void, ms: number) => unknown;
  /** Cancels a timer `setTimer` returned. Default `clearTimeout`. */
  readonly clearTimer?: (handle: unknown) => void;
  /** Runs `callback` on a later turn of the event loop. Default `setImmediate` (else `setTimeout(0)`). */
  readonly defer?: (callback: () => void) => void;
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`virtio-vsock: ${name} ${value} must be an integer in [${min}, ${max}]`);
  }
  return value;
}

/** A guest CID check for options and `transportReset`. */
export function checkGuestCid(cid: number): number {
  return checkInteger('guestCid', cid, MIN_GUEST_CID, MAX_GUEST_CID);
}

function checkPort(port: number): number {
  return checkInteger('port', port, 0, 0xffff_ffff);
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

const RST_SOURCE = 'rst' as const;

/**
 * The virtio socket device (virtio 1.2 §5.10, device ID 19), stream sockets only, with the host side
 * of the connections in-process: `listen(port, onConnection)` for guest-initiated connections to host
 * (CID 2) ports and `connect(port)` for host-initiated ones to guest ports. The packet header is
 * `virtio_vsock_hdr` (see `layout.ts`); the connection state machine follows §5.10.6.4 and
 * Firecracker's `csm`: REQUEST/RESPONSE/RST handshakes, SHUTDOWN half-closes, RST after a full
 * shutdown (or after `closeTimeoutMs`), credit-based flow control both ways.
 *
 * Hostile-guest rules: a guest never makes the host hold more than `bufAlloc` bytes per connection (a
 * guest that overruns its credit is reset), more than `maxConnections` connections, or more than
 * `maxPendingRst` connectionless RST replies (then the tx queue waits for rx buffers); control packets
 * owed on a connection are flags (at most one of each kind, credit updates coalesce), so they are
 * bounded by the connection cap. Malformed packets get RST where the spec implies one (bad type, bad op,
 * oversized `len`, a packet for no connection except RST, a REQUEST nobody listens to) and are dropped
 * otherwise (shorter than a header, or CIDs that are not guest→host); nothing a guest sends throws.
 * Work per notification is at most PACKETS_PER_TURN packets each way; the rest runs on a later turn.
 */
export class VsockDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_VSOCK;
  readonly name = 'virtio-vsock';
  /** No device feature bits: stream sockets only (VIRTIO_VSOCK_F_SEQPACKET is not offered). */
  readonly deviceFeatures = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = VSOCK_CONFIG.SIZE;

  readonly bufAlloc: number;
  readonly maxConnections: number;
  readonly maxPendingRst: number;
  readonly sendHighWaterMark: number;
  readonly sendQueueLimit: number;
  readonly connectTimeoutMs: number;
  readonly acceptTimeoutMs: number;
  readonly closeTimeoutMs: number;

  private cid: number;
  private readonly setTimer: (callback: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly defer: (callback: () => void) => void;
  private host: VirtioDeviceHost | undefined;
  private log: VirtioLogger = silentLogger;
  private readonly owner: ConnectionOwner;

  private rxq: SplitQueue | undefined;
  private txq: SplitQueue | undefined;
  private evq: SplitQueue | undefined;
  private active = false;
  private closed = false;
  /** Bumped by every activation, reset and close: deferred turns of an older epoch do nothing. */
  private epoch = 0;

  /** Connections the guest knows about, by (host port, guest port). */
  private readonly conns = new Map<number, VsockConnection>();
  /** Finished for the guest, still holding guest data the host has not read (count against the cap). */
  private readonly lingering = new Set<VsockConnection>();
  /** Connections that may have a packet for the guest, in round-robin order. */
  private readonly ready = new Set<VsockConnection>();
  private readonly listeners = new Map<number, VsockListener>();
  /** Host ports held by host-initiated connections. */
  private readonly hostPorts = new Set<number>();
  private nextHostPort = HOST_PORT_FIRST;
  /** Connectionless RST replies: (host port, guest port) pairs, flattened. */
  private rstQueue: number[] = [];
  private rstHead = 0;
  private txBlocked = false;
  private readonly rxTurn = new DeferredWork(
    (callback) => this.defer(callback),
    () => this.epoch,
    () => this.safely('sending packets to the guest', () => this.fillRx()),
  );
  private readonly txTurn = new DeferredWork(
    (callback) => this.defer(callback),
    () => this.epoch,
    () => this.safely('processing guest packets', () => this.processTx()),
  );
  private eventPending = false;

  private readonly hdrIn = new Uint8Array(VSOCK_HDR.SIZE);
  private readonly hdrOut = new Uint8Array(VSOCK_HDR.SIZE);
  private readonly hdr = {} as VsockHeader;

  /** Counters, for tests and metrics. */
  readonly stats = {
    /** Guest packets taken from the tx queue (valid chains). */
    txPackets: 0,
    /** Packets written to the rx queue. */
    rxPackets: 0,
    /** Guest packets dropped without an answer (short, wrong CIDs). */
    dropped: 0,
    /** Guest packets answered with RST because they were malformed or broke the protocol. */
    malformed: 0,
    /** Connections reset because the guest sent more than its credit. */
    creditOverruns: 0,
    /** Guest connection requests refused because the connection limit was reached. */
    refusedAtLimit: 0,
  };

  constructor(options: VsockDeviceOptions = {}) {
    this.cid = checkGuestCid(options.guestCid ?? DEFAULT_GUEST_CID);
    const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(queueSize) || queueSize < 1 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new RangeError(`virtio-vsock: queueSize ${queueSize} must be a power of two in [1, 32768]`);
    }
    this.queueMaxSizes = [queueSize, queueSize, queueSize];
    this.bufAlloc = checkInteger('bufAlloc', options.bufAlloc ?? DEFAULT_BUF_ALLOC, 4096, 64 * 1024 * 1024);
    this.maxConnections = checkInteger('maxConnections', options.maxConnections ?? DEFAULT_MAX_CONNECTIONS, 1, 65536);
    this.maxPendingRst = checkInteger('maxPendingRst', options.maxPendingRst ?? DEFAULT_MAX_PENDING_RST, 1, 65536);
    this.sendQueueLimit = checkInteger('sendQueueLimit', options.sendQueueLimit ?? DEFAULT_SEND_QUEUE_LIMIT, 1, 2 ** 30);
    this.sendHighWaterMark = checkInteger(
      'sendHighWaterMark',
      options.sendHighWaterMark ?? Math.min(DEFAULT_SEND_HIGH_WATER_MARK, this.sendQueueLimit),
      1,
      this.sendQueueLimit,
    );
    this.connectTimeoutMs = checkInteger('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, 1, MAX_TIMER_MS);
    this.acceptTimeoutMs = checkInteger('acceptTimeoutMs', options.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS, 1, MAX_TIMER_MS);
    this.closeTimeoutMs = checkInteger('closeTimeoutMs', options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, 1, MAX_TIMER_MS);
    this.setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms));
    this.clearTimer = options.clearTimer ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>));
    this.defer = options.defer ?? nextTurn;

    this.owner = {
      bufAlloc: this.bufAlloc,
      // A quarter of the buffer, as a CREDIT_UPDATE threshold (Linux uses "free space below one packet").
      creditUpdateThreshold: Math.max(1, Math.floor(this.bufAlloc / 4)),
      sendHighWaterMark: this.sendHighWaterMark,
      sendQueueLimit: this.sendQueueLimit,
      closeTimeoutMs: this.closeTimeoutMs,
      log: { warn: (message) => this.log.warn(message), debug: (message) => this.log.debug?.(message) },
      markReady: (conn) => this.markReady(conn),
      settle: (conn) => this.settle(conn),
      setTimer: this.setTimer,
      clearTimer: this.clearTimer,
      defer: this.defer,
      safely: (what, fn) => this.safely(what, fn),
    };
  }

  // ---- host API ------------------------------------------------------------------------------------

  /** The guest's CID (config space `guest_cid`). */
  get guestCid(): number {
    return this.cid;
  }

  /** The driver has started the device (DRIVER_OK) and no reset happened since. */
  get isActive(): boolean {
    return this.active;
  }

  /** Connections counted against `maxConnections`. */
  get connectionCount(): number {
    return this.conns.size + this.lingering.size;
  }

  /** Connectionless RST replies waiting for rx buffers (at most `maxPendingRst`). */
  get pendingRstCount(): number {
    return (this.rstQueue.length - this.rstHead) / 2;
  }

  /** The tx queue waits because the RST replies filled up (resumes when rx buffers drain them). */
  get txWaitingForRx(): boolean {
    return this.txBlocked;
  }

  /** A TRANSPORT_RESET event waits for an event-queue buffer. */
  get eventPendingDelivery(): boolean {
    return this.eventPending;
  }

  /** Every connection the device holds (guest-visible ones, then ones still delivering guest data). */
  connections(): VsockConnection[] {
    return [...this.conns.values(), ...this.lingering];
  }

  /**
   * Accept guest connections to host `port` (or, with `VMADDR_PORT_ANY`, to every port without its own
   * listener). One listener per port. Returns a function that removes it (open connections stay).
   */
  listen(port: number, onConnection: VsockListener): () => void {
    checkPort(port);
    if (typeof onConnection !== 'function') throw new TypeError('virtio-vsock: listen() needs an onConnection function');
    if (this.listeners.has(port)) {
      throw new Error(`virtio-vsock: host port ${port === VMADDR_PORT_ANY ? 'VMADDR_PORT_ANY' : port} already has a listener`);
    }
    this.listeners.set(port, onConnection);
    return () => {
      if (this.listeners.get(port) === onConnection) this.listeners.delete(port);
    };
  }

  /**
   * Connect to guest `port`. Resolves once the guest answers RESPONSE; rejects with a `VsockError`:
   * `ECONNREFUSED` (RST: nothing listens there), `ETIMEDOUT` (no answer in `connectTimeoutMs`),
   * `ENOTCONN` (the guest driver has not started the device), `EAGAIN` (connection limit), or
   * `ECONNRESET` (a reset meanwhile). The host port is assigned from [2^30, 2^31).
   */
  connect(port: number, options: { timeoutMs?: number } = {}): Promise<VsockConnection> {
    try {
      checkPort(port);
      if (options.timeoutMs !== undefined) checkInteger('timeoutMs', options.timeoutMs, 1, MAX_TIMER_MS);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed || !this.active || this.rxq === undefined || !this.rxq.isLive) {
      return Promise.reject(new VsockError('ENOTCONN', `virtio-vsock: cannot connect to guest port ${port}: the guest driver has not started the device`));
    }
    const localPort = this.connectionCount < this.maxConnections ? this.allocateHostPort(port) : undefined;
    if (localPort === undefined) {
      return Promise.reject(new VsockError('EAGAIN', `virtio-vsock: cannot connect to guest port ${port}: ${this.maxConnections} connections already`));
    }
    const conn = new VsockConnection(this.owner, { initiator: 'host', localPort, remotePort: port, remoteCid: this.cid });
    this.conns.set(conn.key, conn);
    this.hostPorts.add(localPort);
    const timeoutMs = options.timeoutMs ?? this.connectTimeoutMs;
    conn.armHandshakeTimer(timeoutMs, () => new VsockError('ETIMEDOUT', `vsock ${conn.describe()}: no answer from the guest within ${timeoutMs} ms`));
    this.markReady(conn);
    return conn.established!;
  }

  /**
   * What a VMM does after restoring a snapshot (or to drop every connection): every connection ends
   * with `ECONNRESET`, and the guest gets VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (held
   * until it posts an event buffer), after which it re-reads `guest_cid` and drops its sockets.
   * `guestCid` changes the CID first (config change interrupt). Listeners stay.
   */
  transportReset(options: { guestCid?: number } = {}): void {
    if (options.guestCid !== undefined) {
      checkGuestCid(options.guestCid);
      if (options.guestCid !== this.cid) {
        this.cid = options.guestCid;
        this.host?.configChanged();
      }
    }
    if (this.active) {
      this.eventPending = true;
      this.safely('sending the transport reset event', () => this.deliverEvents());
    }
    this.clearRstQueue();
    this.dropConnections(new VsockError('ECONNRESET', 'virtio-vsock: transport reset; every connection was dropped'));
  }

  // ---- VirtioDevice --------------------------------------------------------------------------------

  attach(host: VirtioDeviceHost): void {
    this.host = host;
    this.log = rateLimitedLogger(host.log);
  }

  readConfig(offset: number, dest: Uint8Array): void {
    const config = new Uint8Array(VSOCK_CONFIG.SIZE);
    new DataView(config.buffer).setUint32(VSOCK_CONFIG.GUEST_CID, this.cid, true); // high half stays 0
    dest.set(config.subarray(offset, offset + dest.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.log.warn(`virtio-vsock: ${data.length}-byte write to read-only config offset ${offset} ignored`);
  }

  activate(ctx: ActivationContext): void {
    this.forgetActivation();
    this.rxq = ctx.queues[VsockQueue.RX];
    this.txq = ctx.queues[VsockQueue.TX];
    this.evq = ctx.queues[VsockQueue.EVENT];
    if (this.rxq === undefined || this.txq === undefined) {
      this.rxq = this.txq = this.evq = undefined;
      ctx.host.needsReset('virtio-vsock needs its rx and tx queues enabled');
      return;
    }
    if (this.evq === undefined) this.log.warn('virtio-vsock: activated without its event queue; transport resets cannot be signalled');
    this.active = !this.closed;
  }

  processQueue(index: number): void {
    if (!this.active) return;
    switch (index) {
      case VsockQueue.RX:
        this.fillRx();
        break;
      case VsockQueue.TX:
        this.processTx();
        break;
      case VsockQueue.EVENT:
        this.deliverEvents();
        break;
      default:
        this.log.warn(`virtio-vsock: notify of queue ${index}, which does not exist`);
    }
  }

  /** Device reset: every connection ends with `ECONNRESET` on the host side; listeners stay. */
  reset(): void {
    this.forgetActivation();
    this.dropConnections(new VsockError('ECONNRESET', 'virtio-vsock: the device was reset; every connection was dropped'));
  }

  /** The VM is going away: like a reset, and `connect()` fails from now on. */
  close(): void {
    this.closed = true;
    this.forgetActivation();
    this.dropConnections(new VsockError('ECONNRESET', 'virtio-vsock: the device was closed'));
  }

  // ---- internals: bookkeeping ----------------------------------------------------------------------

  private forgetActivation(): void {
    this.epoch++;
    this.active = false;
    this.rxq = this.txq = this.evq = undefined;
    this.txBlocked = false;
    this.rxTurn.cancel();
    this.txTurn.cancel();
    this.eventPending = false;
    this.clearRstQueue();
  }

  private clearRstQueue(): void {
    this.rstQueue = [];
    this.rstHead = 0;
    if (this.txBlocked) {
      this.txBlocked = false;
      this.scheduleTx();
    }
  }

  /** Kill every guest-visible connection (no RST: a reset tells the guest). */
  private dropConnections(error: VsockError): void {
    const all = [...this.conns.values()];
    this.conns.clear();
    this.ready.clear();
    this.hostPorts.clear();
    for (const c of this.lingering) if (c.initiator === 'host') this.hostPorts.add(c.localPort);
    for (const c of all) c.kill(error);
  }

  private allocateHostPort(remotePort: number): number | undefined {
    for (let i = 0; i < 2 * this.maxConnections + 2; i++) {
      const port = this.nextHostPort;
      this.nextHostPort = port + 1 >= HOST_PORT_END ? HOST_PORT_FIRST : port + 1;
      if (!this.hostPorts.has(port) && !this.conns.has(connectionKey(port, remotePort))) return port;
    }
    return undefined;
  }

  private markReady(conn: VsockConnection): void {
    if (this.conns.get(conn.key) !== conn) return;
    this.ready.add(conn);
    this.scheduleRx();
  }

  private settle(conn: VsockConnection): void {
    if (conn.phase === 'done' && !conn.owesRst) {
      if (this.conns.get(conn.key) === conn) {
        this.conns.delete(conn.key);
        this.ready.delete(conn);
        if (!conn.isClosed) this.lingering.add(conn);
      }
      if (conn.isClosed) this.lingering.delete(conn);
    }
    if (conn.initiator === 'host' && this.conns.get(conn.key) !== conn && !this.lingering.has(conn)) this.hostPorts.delete(conn.localPort);
  }

  /** Host-side code paths (timers, deferred turns) must not throw out of the device. */
  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.log.warn(`virtio-vsock: ${what} failed: ${message}`);
      this.host?.needsReset(`virtio-vsock: ${what} failed: ${message}`);
    }
  }

  private scheduleRx(): void {
    if (this.active) this.rxTurn.schedule();
  }

  private scheduleTx(): void {
    if (this.active) this.txTurn.schedule();
  }

  // ---- tx: guest → host ----------------------------------------------------------------------------

  private processTx(): void {
    const txq = this.txq;
    if (!this.active || txq === undefined || !txq.isLive) return;
    let handled = 0;
    for (;;) {
      if (this.pendingRstCount >= this.maxPendingRst) {
        // Every further packet might need an RST we could not hold: leave them in the ring until rx
        // buffers take the queued RSTs (fillRx resumes us).
        this.txBlocked = true;
        break;
      }
      if (handled >= PACKETS_PER_TURN) {
        this.scheduleTx();
        break;
      }
      const popped = txq.pop();
      if (popped === null) break;
      handled++;
      if (popped.kind === 'invalid') {
        this.log.warn(popped.error.message);
        txq.addUsed(popped, 0);
        continue;
      }
      this.stats.txPackets++;
      this.handlePacket(popped);
      // tx buffers are device-readable only: nothing written back.
      txq.addUsed(popped, 0);
    }
    txq.interruptIfNeeded();
    this.fillRx();
  }

  private drop(reason: string): void {
    this.stats.dropped++;
    this.log.warn(`virtio-vsock: guest packet dropped: ${reason}`);
  }

  private handlePacket(chain: DescriptorChain): void {
    if (chain.readableLength < VSOCK_HDR.SIZE) {
      this.drop(`${chain.readableLength} device-readable bytes at head ${chain.head}, shorter than the ${VSOCK_HDR.SIZE}-byte header`);
      return;
    }
    const reader = chain.reader();
    reader.read(this.hdrIn);
    const h = decodeHeader(this.hdrIn, this.hdr);
    if (h.srcCid !== this.cid || h.srcCidHigh !== 0) {
      this.drop(`src_cid ${cidText(h.srcCid, h.srcCidHigh)} is not the guest's CID ${this.cid}`);
      return;
    }
    if (h.dstCid !== VMADDR_CID_HOST || h.dstCidHigh !== 0) {
      this.drop(`dst_cid ${cidText(h.dstCid, h.dstCidHigh)} is not the host (${VMADDR_CID_HOST})`);
      return;
    }
    const key = connectionKey(h.dstPort, h.srcPort);
    const conn = this.conns.get(key);
    const problem =
      h.type !== VsockType.STREAM
        ? `type ${h.type} (only STREAM (1) is supported)`
        : h.op === VsockOp.INVALID || h.op > VSOCK_OP_MAX
          ? `unknown op ${h.op}`
          : h.len > MAX_PACKET_PAYLOAD
            ? `len ${h.len} above the ${MAX_PACKET_PAYLOAD}-byte packet maximum`
            : h.len > reader.remaining
              ? `len ${h.len} but the chain holds ${reader.remaining} bytes after the header`
              : undefined;
    const what = `${opName(h.op)} from guest port ${h.srcPort} to host port ${h.dstPort}`;
    if (problem !== undefined) {
      if (h.op === VsockOp.RST) {
        this.drop(`${what}: ${problem}`); // never answer an RST with an RST
        return;
      }
      this.stats.malformed++;
      if (conn !== undefined) {
        this.log.warn(`virtio-vsock: bad packet ${what}: ${problem}; connection reset`);
        conn.protocolError(`bad packet: ${problem}`);
      } else {
        this.log.warn(`virtio-vsock: bad packet ${what}: ${problem}; answered with RST`);
        this.enqueueRst(h.dstPort, h.srcPort);
      }
      return;
    }
    if (conn === undefined) {
      if (h.op === VsockOp.REQUEST) this.handleRequest(h);
      else if (h.op !== VsockOp.RST) {
        // RW, SHUTDOWN, credit packets, RESPONSE for no connection: RST (the guest's socket is stale).
        this.log.debug?.(`virtio-vsock: ${what} belongs to no connection; answered with RST`);
        this.enqueueRst(h.dstPort, h.srcPort);
      }
      return;
    }
    if (conn.phase === 'done') return; // our RST is on its way
    conn.peerCreditInfo(h.bufAlloc, h.fwdCnt);
    switch (h.op) {
      case VsockOp.REQUEST:
        this.stats.malformed++;
        this.log.warn(`virtio-vsock: ${what}: REQUEST for a connection that exists; connection reset`);
        conn.protocolError('REQUEST for an existing connection');
        break;
      case VsockOp.RESPONSE:
        if (!conn.peerResponse()) {
          if (conn.phase === 'open') this.log.warn(`virtio-vsock: ${what}: unexpected RESPONSE on an open connection dropped`);
          else {
            this.stats.malformed++;
            conn.protocolError('RESPONSE before the host asked');
          }
        }
        break;
      case VsockOp.RST:
        conn.peerRst();
        break;
      case VsockOp.SHUTDOWN:
        if (conn.phase === 'open') conn.peerShutdown(h.flags);
        else {
          this.stats.malformed++;
          conn.protocolError('SHUTDOWN before the connection was established');
        }
        break;
      case VsockOp.RW:
        if (!conn.acceptsData) {
          this.stats.malformed++;
          this.log.warn(`virtio-vsock: ${what}: data ${conn.phase === 'open' ? 'after the guest shut down sending' : 'before the connection was established'}; connection reset`);
          conn.protocolError(conn.phase === 'open' ? 'data after the guest shut down sending' : 'data before the connection was established');
        } else if (conn.wouldOverrun(h.len)) {
          this.stats.creditOverruns++;
          this.log.warn(`virtio-vsock: ${what}: ${h.len} bytes exceed the credit the host advertised (buf_alloc ${this.bufAlloc}); connection reset`);
          conn.protocolError(`the guest sent ${h.len} bytes beyond its credit`);
        } else if (h.len > 0) {
          conn.receive(reader, h.len);
        }
        break;
      case VsockOp.CREDIT_UPDATE:
        break; // peerCreditInfo took it
      case VsockOp.CREDIT_REQUEST:
        conn.peerCreditRequest();
        break;
    }
  }

  private handleRequest(h: VsockHeader): void {
    const listener = this.listeners.get(h.dstPort) ?? this.listeners.get(VMADDR_PORT_ANY);
    if (listener === undefined) {
      this.log.debug?.(`virtio-vsock: guest port ${h.srcPort} connects to host port ${h.dstPort}: nothing listens; RST`);
      this.enqueueRst(h.dstPort, h.srcPort);
      return;
    }
    if (this.connectionCount >= this.maxConnections) {
      this.stats.refusedAtLimit++;
      this.log.warn(`virtio-vsock: guest port ${h.srcPort} connects to host port ${h.dstPort}: ${this.maxConnections} connections already; refused`);
      this.enqueueRst(h.dstPort, h.srcPort);
      return;
    }
    const conn = new VsockConnection(this.owner, { initiator: 'guest', localPort: h.dstPort, remotePort: h.srcPort, remoteCid: this.cid });
    conn.peerCreditInfo(h.bufAlloc, h.fwdCnt);
    this.conns.set(conn.key, conn);
    conn.armHandshakeTimer(
      this.acceptTimeoutMs,
      () => new VsockError('ETIMEDOUT', `vsock ${conn.describe()}: the host listener did not accept within ${this.acceptTimeoutMs} ms`),
    );
    let result: unknown;
    try {
      result = listener(conn);
    } catch (error) {
      this.log.warn(`virtio-vsock: the listener of host port ${h.dstPort} threw: ${error instanceof Error ? error.message : String(error)}; refused`);
      conn.refuse();
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        (ok) => this.safely('accepting a connection', () => (ok === false ? conn.refuse() : conn.accept())),
        (error: unknown) => this.safely('refusing a connection', () => conn.refuse(error instanceof Error ? error : undefined)),
      );
    } else if (result === false) {
      conn.refuse();
    } else {
      conn.accept();
    }
  }

  private enqueueRst(hostPort: number, guestPort: number): void {
    if (this.pendingRstCount >= this.maxPendingRst) {
      // processTx stops before this can happen; kept as a guard.
      this.log.warn(`virtio-vsock: RST to guest port ${guestPort} dropped: ${this.maxPendingRst} RST replies already wait for rx buffers`);
      return;
    }
    this.rstQueue.push(hostPort, guestPort);
  }

  // ---- rx: host → guest ----------------------------------------------------------------------------

  private nextSource(): VsockConnection | typeof RST_SOURCE | undefined {
    if (this.pendingRstCount > 0) return RST_SOURCE;
    for (const conn of this.ready) {
      if (this.conns.get(conn.key) === conn && conn.wantsRx()) return conn;
      this.ready.delete(conn);
    }
    return undefined;
  }

  private fillRx(): void {
    const rxq = this.rxq;
    if (!this.active || rxq === undefined || !rxq.isLive) return;
    let handled = 0;
    for (;;) {
      const source = this.nextSource();
      if (source === undefined) break;
      if (handled >= PACKETS_PER_TURN) {
        this.scheduleRx();
        break;
      }
      const popped = rxq.pop();
      if (popped === null) break; // the guest notifies when it posts rx buffers
      handled++;
      if (popped.kind === 'invalid') {
        this.log.warn(popped.error.message);
        rxq.addUsed(popped, 0);
        continue;
      }
      if (popped.readableCount > 0 || popped.writableLength < VSOCK_HDR.SIZE) {
        this.log.warn(
          `virtio-vsock: rx buffer at head ${popped.head} ${popped.readableCount > 0 ? 'has device-readable descriptors' : `has ${popped.writableLength} writable bytes, less than a header`}; returned unused`,
        );
        rxq.addUsed(popped, 0);
        continue;
      }
      const len = source === RST_SOURCE ? this.writeRst(popped) : this.writeConnectionPacket(source, popped);
      this.stats.rxPackets++;
      rxq.addUsed(popped, len);
    }
    rxq.interruptIfNeeded();
    if (this.txBlocked && this.pendingRstCount < this.maxPendingRst) {
      this.txBlocked = false;
      this.scheduleTx();
    }
  }

  private writeHeader(chain: DescriptorChain, srcPort: number, dstPort: number, op: number, flags: number, len: number, bufAlloc: number, fwdCnt: number): void {
    encodeHeader(
      { srcCid: VMADDR_CID_HOST, dstCid: this.cid, srcPort, dstPort, len, type: VsockType.STREAM, op, flags, bufAlloc, fwdCnt },
      this.hdrOut,
    );
    chain.writer().write(this.hdrOut);
  }

  private writeRst(chain: DescriptorChain): number {
    const hostPort = this.rstQueue[this.rstHead];
    const guestPort = this.rstQueue[this.rstHead + 1];
    this.rstHead += 2;
    if (this.rstHead === this.rstQueue.length) {
      this.rstQueue = [];
      this.rstHead = 0;
    } else if (this.rstHead > 64 && this.rstHead * 2 > this.rstQueue.length) {
      this.rstQueue = this.rstQueue.slice(this.rstHead);
      this.rstHead = 0;
    }
    this.writeHeader(chain, hostPort, guestPort, VsockOp.RST, 0, 0, 0, 0);
    return VSOCK_HDR.SIZE;
  }

  private writeConnectionPacket(conn: VsockConnection, chain: DescriptorChain): number {
    const writer = chain.writer();
    writer.skip(VSOCK_HDR.SIZE);
    const payloadCap = Math.min(chain.writableLength - VSOCK_HDR.SIZE, MAX_PACKET_PAYLOAD);
    const p = conn.produce(writer, payloadCap);
    this.writeHeader(chain, conn.localPort, conn.remotePort, p.op, p.flags, p.len, this.bufAlloc, conn.forwardCount);
    this.ready.delete(conn);
    if (conn.wantsRx()) this.ready.add(conn);
    this.settle(conn);
    return VSOCK_HDR.SIZE + p.len;
  }

  // ---- event queue ---------------------------------------------------------------------------------

  private deliverEvents(): void {
    const evq = this.evq;
    if (!this.eventPending || !this.active || evq === undefined || !evq.isLive) return;
    for (let i = 0; i < PACKETS_PER_TURN && this.eventPending; i++) {
      const popped = evq.pop();
      if (popped === null) break; // held until the guest posts an event buffer
      if (popped.kind === 'invalid') {
        this.log.warn(popped.error.message);
        evq.addUsed(popped, 0);
        continue;
      }
      if (popped.readableCount > 0 || popped.writableLength < VSOCK_EVENT.SIZE) {
        this.log.warn(`virtio-vsock: event buffer at head ${popped.head} is not a ${VSOCK_EVENT.SIZE}-byte device-writable buffer; returned unused`);
        evq.addUsed(popped, 0);
        continue;
      }
      const event = new Uint8Array(VSOCK_EVENT.SIZE);
      new DataView(event.buffer).setUint32(VSOCK_EVENT.ID, VsockEventId.TRANSPORT_RESET, true);
      popped.writer().write(event);
      evq.addUsed(popped, VSOCK_EVENT.SIZE);
      this.eventPending = false;
    }
    evq.interruptIfNeeded();
  }
}

function cidText(low: number, high: number): string {
  return high === 0 ? String(low) : `0x${high.toString(16)}${low.toString(16).padStart(8, '0')}`;
}
