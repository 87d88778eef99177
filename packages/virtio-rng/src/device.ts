import {
  DeferredWork,
  nextTurn,
  type ActivationContext,
  type DescriptorChain,
  DeviceId,
  type SplitQueue,
  type VirtioDevice,
  type VirtioDeviceHost,
  type VirtioLogger,
  silentLogger,
} from '@hype/virtio';
import { type RateLimit, TokenBucket, checkRateLimit } from './token-bucket.js';

// ---- bounds (the guest is hostile: every one of these caps what a guest can make the host do) ----------

/**
 * Most random bytes put into one request (one descriptor chain), whatever its writable length. The
 * spec lets the device fill less than the whole buffer (virtio 1.2 §5.4.6.2); the used length says how
 * much. Linux's driver asks for a cache line at a time (64 bytes on x86-64), so this never shortens
 * a real driver's request.
 */
export const MAX_BYTES_PER_REQUEST = 64 * 1024;
/** Most chains taken from the queue in one turn of the event loop; the rest wait for a later turn. */
export const MAX_CHAINS_PER_TURN = 64;
/**
 * A turn of the event loop takes no further chain once it has produced this many random bytes (16
 * full-size requests), so a turn produces less than MAX_BYTES_PER_TURN + MAX_BYTES_PER_REQUEST.
 */
export const MAX_BYTES_PER_TURN = 1024 * 1024;
/** Largest `crypto.getRandomValues` call (the Web Crypto quota): the source is called in chunks of this. */
export const SOURCE_CHUNK_BYTES = 65536;
/** Size of the one scratch buffer the source fills: the only host memory the data path uses. */
export const SCRATCH_BYTES = Math.min(SOURCE_CHUNK_BYTES, MAX_BYTES_PER_REQUEST);
/** Longest single timer (setTimeout's 32-bit limit); a longer wait re-arms when it fires. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** QueueNumMax of the request queue by default. */
export const DEFAULT_QUEUE_SIZE = 256;

/** Fills `dest` entirely with random bytes (`dest.length` is at most SOURCE_CHUNK_BYTES). */
export type EntropySource = (dest: Uint8Array) => void;

export interface EntropyDeviceOptions {
  /** Where the bytes come from. Default: `crypto.getRandomValues` of the global Web Crypto object. */
  readonly source?: EntropySource;
  /** Optional token bucket: at most `burstBytes` at once, refilled at `bytesPerSecond`. Default: none. */
  readonly rateLimit?: RateLimit;
  /** QueueNumMax of the request queue: a power of two in [1, 32768]. Default 256. */
  readonly queueSize?: number;
  /** Milliseconds clock for the rate limit. Default: `performance.now()` (else `Date.now()`). */
  readonly now?: () => number;
  /** Starts a timer (for the rate limit). Default: `setTimeout`. */
  readonly setTimer?: (callback: () => void, ms: number) => unknown;
  /** Cancels a timer `setTimer` returned. Default: `clearTimeout`. */
  readonly clearTimer?: (handle: unknown) => void;
  /**
   * Runs `callback` on a later turn of the event loop, after pending I/O (to continue past the per-turn
   * caps). Default: `setImmediate` where the runtime has it, else `setTimeout(callback, 0)`.
   */
  readonly defer?: (callback: () => void) => void;
}

function defaultSource(): EntropySource {
  const crypto = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  const getRandomValues = crypto?.getRandomValues;
  if (crypto === undefined || typeof getRandomValues !== 'function') {
    throw new Error('virtio-rng: no global crypto.getRandomValues in this runtime; pass `source`');
  }
  return (dest) => {
    getRandomValues.call(crypto, dest);
  };
}

function defaultNow(): () => number {
  const performance = (globalThis as { performance?: { now?: () => number } }).performance;
  if (performance !== undefined && typeof performance.now === 'function') return () => performance.now!();
  return () => Date.now();
}

/**
 * The virtio entropy device (virtio 1.2 §5.4, device ID 4): one request queue, no feature bits, no
 * configuration space. Each chain the driver posts gets random bytes in its device-writable buffers, at
 * most MAX_BYTES_PER_REQUEST per chain, and goes back with the number of bytes written.
 *
 * Guest mistakes never throw and never reset the device: a chain with a device-readable descriptor
 * (§5.4.6.1: the driver MUST NOT) is returned unread with length 0 and logged once per activation;
 * malformed chains are returned with length 0. Host work per turn of the event loop is capped
 * (MAX_CHAINS_PER_TURN, MAX_BYTES_PER_TURN), and the data path allocates nothing that grows with what
 * the guest asks for: one SCRATCH_BYTES buffer is reused.
 *
 * With `rateLimit`, a chain is served only once the bucket holds its size in bytes (or the whole burst,
 * for a chain larger than the burst, which then gets a partial fill); until then that one chain is held,
 * the rest stay in the available ring, and a timer fires when enough tokens exist. The bucket is
 * host-side state: a device reset does not refill it.
 */
export class EntropyDevice implements VirtioDevice {
  readonly deviceType = DeviceId.RNG;
  readonly name = 'virtio-rng';
  readonly deviceFeatures = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 0;

  private readonly source: EntropySource;
  private readonly bucket: TokenBucket | undefined;
  private readonly setTimer: (callback: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly defer: (callback: () => void) => void;
  private readonly scratch = new Uint8Array(SCRATCH_BYTES);
  private host: VirtioDeviceHost | undefined;
  private log: VirtioLogger = silentLogger;

  private queue: SplitQueue | undefined;
  /** Bumped by every activation, reset and close: timers and deferred turns of an older epoch do nothing. */
  private epoch = 0;
  /** The one chain popped and waiting for tokens. */
  private held: DescriptorChain | undefined;
  private timer: { handle: unknown } | undefined;
  private readonly continueTurn = new DeferredWork(
    (callback) => this.defer(callback),
    () => this.epoch,
    () => this.safely('serving requests', () => this.serve()),
  );
  private warnedReadable = false;
  private delivered = 0;

  constructor(options: EntropyDeviceOptions = {}) {
    const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(queueSize) || queueSize < 1 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new RangeError(`virtio-rng: queueSize ${queueSize} must be a power of two in [1, 32768]`);
    }
    this.queueMaxSizes = [queueSize];
    if (options.source !== undefined && typeof options.source !== 'function') {
      throw new TypeError('virtio-rng: source must be a function (dest: Uint8Array) => void');
    }
    this.source = options.source ?? defaultSource();
    if (options.rateLimit !== undefined) {
      checkRateLimit(options.rateLimit);
      this.bucket = new TokenBucket(options.rateLimit, options.now ?? defaultNow());
    }
    this.setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms));
    this.clearTimer = options.clearTimer ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>));
    this.defer = options.defer ?? nextTurn;
  }

  /** Random bytes handed to the guest so far (across resets). */
  get bytesDelivered(): number {
    return this.delivered;
  }

  /** Waiting for the rate limit's timer (chains are left in the queue meanwhile). */
  get throttled(): boolean {
    return this.timer !== undefined;
  }

  attach(host: VirtioDeviceHost): void {
    this.host = host;
    this.log = host.log;
  }

  readConfig(_offset: number, _dest: Uint8Array): void {
    // No configuration space (configSize 0): the transport never calls this.
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.log.warn(`virtio-rng: ${data.length}-byte config write at offset ${offset} ignored (no configuration space)`);
  }

  activate(ctx: ActivationContext): void {
    this.forget();
    this.queue = ctx.queues[0];
    if (this.queue === undefined) this.log.warn('virtio-rng: activated without its request queue enabled');
  }

  processQueue(index: number): void {
    if (index !== 0 || this.queue === undefined) {
      this.log.warn(`virtio-rng: notify of queue ${index}, which does not exist or is not enabled`);
      return;
    }
    this.safely('serving requests', () => this.serve());
  }

  reset(): void {
    this.forget();
  }

  /** Cancels the timer and drops the activation (the VM is going away). Safe to call more than once. */
  close(): void {
    this.forget();
  }

  /** Drop everything of the current activation: queue, held chain, timer, scheduled turn. */
  private forget(): void {
    this.epoch++;
    this.queue = undefined;
    this.held = undefined;
    this.continueTurn.cancel();
    this.warnedReadable = false;
    if (this.timer !== undefined) {
      const { handle } = this.timer;
      this.timer = undefined;
      this.clearTimer(handle);
    }
  }

  /** Host-side failures (the source threw) are fatal for the device, not the process. */
  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.host?.needsReset(`virtio-rng: ${what} failed: ${message}`);
    }
  }

  /** One turn: serve chains until the queue is empty, the bucket is, or a per-turn cap is reached. */
  private serve(): void {
    const queue = this.queue;
    if (queue === undefined || !queue.isLive || this.timer !== undefined) return;
    let chains = 0;
    let bytes = 0;
    for (;;) {
      if (chains >= MAX_CHAINS_PER_TURN || bytes >= MAX_BYTES_PER_TURN) {
        this.scheduleContinue();
        break;
      }
      const popped = this.held ?? queue.pop();
      this.held = undefined;
      if (popped === null) break;
      chains++;
      if (popped.kind === 'invalid') {
        this.log.warn(popped.error.message);
        queue.addUsed(popped, 0);
        continue;
      }
      if (popped.readableCount > 0) {
        // §5.4.6.1: the driver MUST NOT place device-readable buffers here. Never read them; return the
        // chain empty so the driver gets its descriptors back.
        if (!this.warnedReadable) {
          this.warnedReadable = true;
          this.log.warn(`virtio-rng: chain at head ${popped.head} has device-readable buffers (a driver bug); returned with length 0`);
        }
        queue.addUsed(popped, 0);
        continue;
      }
      const wanted = Math.min(popped.writableLength, MAX_BYTES_PER_REQUEST);
      if (wanted === 0) {
        queue.addUsed(popped, 0);
        continue;
      }
      let grant = wanted;
      if (this.bucket !== undefined) {
        const needed = Math.min(wanted, this.bucket.capacity);
        const available = this.bucket.available();
        if (available < needed) {
          this.held = popped;
          this.scheduleRefill(this.bucket.delayFor(needed));
          break;
        }
        grant = Math.min(wanted, available);
        this.bucket.take(grant);
      }
      this.fill(popped, grant);
      queue.addUsed(popped, grant);
      this.delivered += grant;
      bytes += grant;
    }
    queue.interruptIfNeeded();
  }

  /** Write `length` random bytes into the chain's writable buffers, through the scratch buffer. */
  private fill(chain: DescriptorChain, length: number): void {
    const writer = chain.writer();
    let left = length;
    while (left > 0) {
      const piece = this.scratch.subarray(0, Math.min(left, this.scratch.length));
      this.source(piece);
      writer.write(piece);
      piece.fill(0); // no copy of what the guest got stays in host memory
      left -= piece.length;
    }
  }

  private scheduleContinue(): void {
    this.continueTurn.schedule();
  }

  private scheduleRefill(delayMs: number): void {
    const epoch = this.epoch;
    const ms = Math.min(MAX_TIMER_DELAY_MS, Math.max(1, delayMs));
    const timer: { handle: unknown } = { handle: undefined };
    this.timer = timer;
    timer.handle = this.setTimer(() => {
      if (epoch !== this.epoch || this.timer !== timer) return;
      this.timer = undefined;
      this.safely('serving requests', () => this.serve());
    }, ms);
  }
}
