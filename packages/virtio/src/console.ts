import type { ChainReader, DescriptorChain } from './chain.js';
import type { ActivationContext, VirtioDevice, VirtioDeviceHost } from './device.js';
import { DeviceId, featureMask } from './features.js';
import type { SplitQueue } from './queue.js';

// Byte layout of struct virtio_console_config (virtio 1.2 §5.3.4), in one place.
// Checked against Linux include/uapi/linux/virtio_console.h in test/layout.test.ts.
export const ConsoleConfig = {
  COLS: 0, // le16
  ROWS: 2, // le16
  MAX_NR_PORTS: 4, // le32
  EMERG_WR: 8, // le32
  SIZE: 12,
} as const;

/** Console feature bit numbers (§5.3.3). */
export const ConsoleFeature = {
  SIZE: 0,
  MULTIPORT: 1,
  EMERG_WRITE: 2,
} as const;

/** Queue indices without VIRTIO_CONSOLE_F_MULTIPORT (§5.3.2). */
export const ConsoleQueue = {
  RECEIVE: 0,
  TRANSMIT: 1,
} as const;

/** Where guest output goes (e.g. stdout). Node streams adapt as `{ write: b => s.write(b), onDrain: f => s.on('drain', f) }`. */
export interface ConsoleSink {
  /**
   * Take `bytes` (the console never touches the array again). Returns false when the sink is full: it
   * has still taken these bytes, but the console stops sending until the drain listener is called.
   */
  write(bytes: Uint8Array): boolean;
  /** Register the listener called when a full sink can take more. Called once, at construction. */
  onDrain(listener: () => void): void;
}

/** Where guest input comes from (e.g. stdin): `{ onData: f => s.on('data', f), pause: () => s.pause(), resume: () => s.resume() }`. */
export interface ConsoleSource {
  /** Register the data listener. Called once, at construction. The console copies what it is given. */
  onData(listener: (bytes: Uint8Array) => void): void;
  /** Stop delivering data until `resume` (host input is buffered faster than the guest reads it). */
  pause(): void;
  resume(): void;
}

export interface ConsoleDeviceOptions {
  readonly sink: ConsoleSink;
  readonly source?: ConsoleSource;
  /** QueueNumMax of both queues. Default 256. */
  readonly queueSize?: number;
  /** Offer VIRTIO_CONSOLE_F_SIZE with this initial size (change it later with `resize`). */
  readonly size?: { readonly cols: number; readonly rows: number };
  /** Pause the source once this many input bytes wait for guest buffers. Default 64 KiB. */
  readonly inputHighWater?: number;
  /** Largest piece of guest output handed to the sink at once. Default 64 KiB. */
  readonly maxWriteChunk?: number;
  /**
   * Most emergency-write bytes held while the sink is full (they cannot wait in guest memory like queue
   * output can). Bytes beyond it are dropped and counted. Default 1 MiB.
   */
  readonly maxPendingEmergency?: number;
}

/** Chains handled per queue per turn before yielding to the event loop (a guest could refill forever). */
const CHAINS_PER_TURN = 256;

/**
 * virtio console (device ID 3, virtio 1.2 §5.3): one port, receiveq 0 and transmitq 1, optional console
 * size and emergency write. Backpressure both ways and no lost or reordered bytes: guest output is
 * taken from the transmit queue only while the sink accepts it; host input is buffered (pausing the
 * source above a threshold) until the guest posts receive buffers. Emergency writes, which cannot be
 * made to wait, are held while the sink is full up to `maxPendingEmergency` bytes and dropped beyond.
 */
export class ConsoleDevice implements VirtioDevice {
  readonly deviceType = DeviceId.CONSOLE;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = ConsoleConfig.SIZE;

  private readonly sink: ConsoleSink;
  private readonly source: ConsoleSource | undefined;
  private readonly inputHighWater: number;
  private readonly maxWriteChunk: number;
  private readonly maxPendingEmergency: number;
  private host: VirtioDeviceHost | undefined;
  private cols: number;
  private rows: number;

  private rxq: SplitQueue | undefined;
  private txq: SplitQueue | undefined;
  /** The transmit chain being written out when the sink filled up, and where in it we are. */
  private txChain: DescriptorChain | undefined;
  private txReader: ChainReader | undefined;
  private sinkFull = false;
  /** Emergency-write bytes that came while the sink was full, sent first when it drains. */
  private emergency = new Uint8Array(0);
  private emergencyLength = 0;
  private emergencyDropped = 0;
  private input: Uint8Array[] = [];
  private inputOffset = 0;
  private inputBytes = 0;
  private sourcePaused = false;
  private txScheduled = false;
  private rxScheduled = false;

  constructor(options: ConsoleDeviceOptions) {
    this.sink = options.sink;
    this.source = options.source;
    const queueSize = options.queueSize ?? 256;
    this.queueMaxSizes = [queueSize, queueSize];
    this.inputHighWater = Math.max(1, options.inputHighWater ?? 64 * 1024);
    this.maxWriteChunk = Math.max(1, options.maxWriteChunk ?? 64 * 1024);
    this.maxPendingEmergency = Math.max(1, options.maxPendingEmergency ?? 1024 * 1024);
    this.cols = options.size?.cols ?? 0;
    this.rows = options.size?.rows ?? 0;
    this.deviceFeatures =
      featureMask(ConsoleFeature.EMERG_WRITE) | (options.size !== undefined ? featureMask(ConsoleFeature.SIZE) : 0n);
    // These callbacks run outside the transport's guard (from the host's streams and timers), so they
    // contain failures themselves instead of throwing into the stream's event emitter.
    this.sink.onDrain(() =>
      this.safely('transmitting after drain', () => {
        this.sinkFull = false;
        this.flushEmergency();
        this.processTransmit();
      }),
    );
    this.source?.onData((bytes) => this.safely('receiving host input', () => this.hostInput(bytes)));
  }

  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (this.host !== undefined) this.host.needsReset(`virtio-console failed while ${what}: ${message}`);
    }
  }

  /** Host input bytes waiting for guest receive buffers. */
  get bufferedInput(): number {
    return this.inputBytes;
  }

  /** Emergency-write bytes held for a full sink. */
  get pendingEmergency(): number {
    return this.emergencyLength;
  }

  /** Emergency-write bytes dropped because the sink stayed full past `maxPendingEmergency`. */
  get droppedEmergency(): number {
    return this.emergencyDropped;
  }

  /** Change the console size (VIRTIO_CONSOLE_F_SIZE): config change interrupt to the guest. */
  resize(cols: number, rows: number): void {
    this.cols = cols & 0xffff;
    this.rows = rows & 0xffff;
    this.host?.configChanged();
  }

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, dest: Uint8Array): void {
    const config = new Uint8Array(ConsoleConfig.SIZE);
    const dv = new DataView(config.buffer);
    dv.setUint16(ConsoleConfig.COLS, this.cols, true);
    dv.setUint16(ConsoleConfig.ROWS, this.rows, true);
    // max_nr_ports is only valid with MULTIPORT (not offered); emerg_wr is write-only and reads 0.
    dest.set(config.subarray(offset, offset + dest.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    if (offset === ConsoleConfig.EMERG_WR && data.length >= 1) {
      this.emergencyWrite(data[0]);
      return;
    }
    this.host?.log.warn(`virtio-console: write of ${data.length} bytes at config offset ${offset} ignored (read-only)`);
  }

  activate(ctx: ActivationContext): void {
    this.rxq = ctx.queues[ConsoleQueue.RECEIVE];
    this.txq = ctx.queues[ConsoleQueue.TRANSMIT];
    if (this.rxq === undefined || this.txq === undefined) {
      ctx.host.needsReset('virtio-console needs both receiveq and transmitq enabled');
      return;
    }
    this.processTransmit();
    this.deliverInput();
  }

  processQueue(index: number): void {
    if (index === ConsoleQueue.TRANSMIT) this.processTransmit();
    else if (index === ConsoleQueue.RECEIVE) this.deliverInput();
  }

  reset(): void {
    // Chains of the old activation are gone with their queues; the sink's state and buffered host
    // input are host-side and survive (typed input reaches the next driver).
    this.rxq = undefined;
    this.txq = undefined;
    this.txChain = undefined;
    this.txReader = undefined;
  }

  // ---- transmit: guest -> sink ---------------------------------------------------------------------

  /**
   * Emergency write (§5.3.4) is a config write: it cannot be made to wait the way a transmit chain waits
   * in the queue. While the sink is full its bytes are held here, in order, up to a fixed limit; beyond
   * that they are dropped (counted, warned about once) so a guest cannot grow host memory through it.
   */
  private emergencyWrite(byte: number): void {
    if (!this.sinkFull && this.emergencyLength === 0) {
      if (!this.sink.write(Uint8Array.of(byte))) this.sinkFull = true;
      return;
    }
    if (this.emergencyLength >= this.maxPendingEmergency) {
      if (this.emergencyDropped++ === 0) {
        this.host?.log.warn(
          `virtio-console: the console output is not draining; emergency-write bytes beyond ${this.maxPendingEmergency} are dropped`,
        );
      }
      return;
    }
    if (this.emergencyLength === this.emergency.length) {
      const bigger = new Uint8Array(Math.min(this.maxPendingEmergency, Math.max(256, this.emergency.length * 2)));
      bigger.set(this.emergency);
      this.emergency = bigger;
    }
    this.emergency[this.emergencyLength++] = byte;
  }

  /** Sends held emergency bytes (after a drain), before any more queue output. */
  private flushEmergency(): void {
    if (this.emergencyLength === 0 || this.sinkFull) return;
    const bytes = this.emergency.slice(0, this.emergencyLength);
    this.emergency = new Uint8Array(0);
    this.emergencyLength = 0;
    if (!this.sink.write(bytes)) this.sinkFull = true;
  }

  private processTransmit(): void {
    const txq = this.txq;
    if (txq === undefined || !txq.isLive) return;
    let handled = 0;
    while (!this.sinkFull) {
      if (this.txChain === undefined) {
        if (handled >= CHAINS_PER_TURN) {
          this.scheduleTransmit();
          break;
        }
        const chain = txq.popChain();
        if (chain === null) break;
        this.txChain = chain;
        this.txReader = chain.reader();
        handled++;
      }
      const reader = this.txReader!;
      while (reader.remaining > 0 && !this.sinkFull) {
        const piece = reader.readExact(Math.min(reader.remaining, this.maxWriteChunk))!;
        if (!this.sink.write(piece)) this.sinkFull = true;
      }
      if (reader.remaining === 0) {
        // The guest's buffers are device-readable only: nothing written back.
        txq.addUsed(this.txChain, 0);
        this.txChain = undefined;
        this.txReader = undefined;
      }
    }
    txq.interruptIfNeeded();
  }

  private scheduleTransmit(): void {
    if (this.txScheduled) return;
    this.txScheduled = true;
    setTimeout(() => {
      this.txScheduled = false;
      this.safely('transmitting', () => this.processTransmit());
    }, 0);
  }

  // ---- receive: source -> guest --------------------------------------------------------------------

  private hostInput(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.input.push(bytes.slice());
    this.inputBytes += bytes.length;
    if (!this.sourcePaused && this.inputBytes >= this.inputHighWater) {
      this.sourcePaused = true;
      this.source?.pause();
    }
    this.deliverInput();
  }

  private deliverInput(): void {
    const rxq = this.rxq;
    if (rxq !== undefined && rxq.isLive) {
      let handled = 0;
      while (this.inputBytes > 0) {
        if (handled >= CHAINS_PER_TURN) {
          this.scheduleReceive();
          break;
        }
        const chain = rxq.popChain();
        if (chain === null) break;
        handled++;
        const writer = chain.writer();
        while (writer.remaining > 0 && this.inputBytes > 0) {
          const head = this.input[0];
          const n = writer.write(head.subarray(this.inputOffset));
          this.inputOffset += n;
          this.inputBytes -= n;
          if (this.inputOffset === head.length) {
            this.input.shift();
            this.inputOffset = 0;
          }
        }
        rxq.addUsed(chain, writer.written);
      }
      rxq.interruptIfNeeded();
    }
    if (this.sourcePaused && this.inputBytes < this.inputHighWater / 2) {
      this.sourcePaused = false;
      this.source?.resume();
    }
  }

  private scheduleReceive(): void {
    if (this.rxScheduled) return;
    this.rxScheduled = true;
    setTimeout(() => {
      this.rxScheduled = false;
      this.safely('receiving', () => this.deliverInput());
    }, 0);
  }
}
