// A NetBackend over a Linux TAP interface (/dev/net/tun, IFF_TAP | IFF_NO_PI): the guest's Ethernet frames
// go to the host kernel's network stack as if from a NIC, and what the kernel sends out of the interface
// comes back. The fd is non-blocking and read on the event loop through @hype/kvm-sys's FdWatcher (a
// uv_poll_t), one frame per read(2): no thread per packet, no libuv thread pool.
import { closeSync, constants as fsConstants, openSync, readSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { NativeAddon, NativeFdWatcher } from '@hype/kvm-sys';
import { Listeners, type NetBackend } from '../src/backend.js';

/** The clone device a TAP interface is opened through. */
export const TAP_DEVICE_PATH = '/dev/net/tun';

/**
 * Longest frame read(2) can return: a TAP interface's MTU is at most 65535 - 14, so 65535 bytes of
 * Ethernet frame, plus a VLAN tag the kernel may re-insert (4). No IFF_VNET_HDR, so no GSO frames above
 * the MTU. The backend's one read buffer is this large.
 */
export const TAP_MAX_FRAME = 65535 + 4;

/** Frames read per readability wake-up by default, before yielding to the event loop. */
export const DEFAULT_TAP_FRAMES_PER_WAKEUP = 64;

/** IFNAMSIZ - 1. */
const MAX_NAME_BYTES = 15;

const { EAGAIN, EWOULDBLOCK, EINTR, EIO, ENOBUFS, ENOMEM, EINVAL, EMSGSIZE, EPERM, EACCES, EBUSY, ENOENT, ENODEV, ENXIO } = osConstants.errno;

/**
 * write(2) errors that lose one frame and leave the interface usable: the queue is full (EAGAIN,
 * ENOBUFS; a TAP device does not block writes in practice: the kernel takes the frame or drops it), the
 * interface is down (EIO), memory is short (ENOMEM), the kernel refused this frame (EINVAL: shorter
 * than an Ethernet header; EMSGSIZE). Any other error closes the backend.
 */
const DROP_ERRNOS = new Set([EAGAIN, EWOULDBLOCK, EINTR, EIO, ENOBUFS, ENOMEM, EINVAL, EMSGSIZE]);
/** What read(2) and write(2) return once the interface was deleted (not in os.constants.errno). */
const EBADFD = 77;

export interface TapBackendOptions {
  /** Frames read per readability wake-up before yielding to the event loop, in [1, 65536]. Default 64. */
  readonly framesPerWakeup?: number;
  /** The clone device. Default `/dev/net/tun`. */
  readonly devicePath?: string;
}

/** Opening a TAP interface failed, or the open interface failed (then given to `onClose`). */
export class TapError extends Error {
  constructor(
    message: string,
    /** The errno name (`EPERM`, `EBUSY`, ...), when a system call failed. */
    readonly code?: string,
    /** The positive errno, when a system call failed. */
    readonly errno?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TapError';
  }
}

/**
 * Checks a TAP interface name as the kernel would (`dev_valid_name`): 1 to 15 bytes of UTF-8, no `/`,
 * `:` or whitespace, not `.` or `..`. A `%d` in it lets the kernel pick the number (`tap%d` -> `tap0`).
 * Returns the name; throws a TypeError or RangeError saying what is wrong.
 */
export function checkTapName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError(`virtio-net: a TAP interface name must be a string (got ${typeof name})`);
  const bytes = Buffer.byteLength(name, 'utf8');
  const problem =
    bytes === 0
      ? 'is empty'
      : bytes > MAX_NAME_BYTES
        ? `is ${bytes} bytes long; interface names are at most ${MAX_NAME_BYTES}`
        : /[/:\s\0]/u.test(name)
          ? 'contains a "/", ":", NUL or whitespace character'
          : name === '.' || name === '..'
            ? 'is "." or ".."'
            : undefined;
  if (problem !== undefined) throw new RangeError(`virtio-net: the TAP interface name ${JSON.stringify(name)} ${problem}`);
  return name;
}

type KvmSys = typeof import('@hype/kvm-sys');

/** @hype/kvm-sys, loaded on first use (an optional dependency: importing /node must work without it). */
async function loadKvmSys(): Promise<{ sys: NativeAddon; tapFlags: number }> {
  let kvmSys: KvmSys;
  try {
    kvmSys = await import('@hype/kvm-sys');
  } catch (error) {
    throw new TapError(
      'virtio-net: the TAP backend needs @hype/kvm-sys (a native addon for Linux x86-64), an optional dependency that is not installed here',
      undefined,
      undefined,
      { cause: error },
    );
  }
  // addon() throws with what to do when the addon does not load. No IFF_VNET_HDR: the device offers no offloads.
  return { sys: kvmSys.addon(), tapFlags: kvmSys.TunFlag.TAP | kvmSys.TunFlag.NO_PI };
}

const errnoName = (sys: NativeAddon, errno: number | undefined): string | undefined => (errno === undefined ? undefined : sys.errnoName(errno));

const errnoOf = (error: unknown): number | undefined => {
  const errno = (error as NodeJS.ErrnoException | undefined)?.errno;
  return typeof errno === 'number' ? Math.abs(errno) : undefined;
};

/** `EPERM (Operation not permitted)`. */
function describeErrno(sys: NativeAddon, errno: number): string {
  return `${sys.errnoName(errno)} (${sys.errnoMessage(errno)})`;
}

/** The one-line reason opening `/dev/net/tun` failed. */
function openFailure(sys: NativeAddon, path: string, errno: number | undefined, error: unknown): string {
  if (errno === ENOENT) return `${path} does not exist: the kernel needs the tun module (\`modprobe tun\`; in a container, pass the device in)`;
  if (errno === ENODEV || errno === ENXIO) return `${path} has no driver behind it: the kernel needs the tun module (\`modprobe tun\`)`;
  if (errno === EACCES || errno === EPERM) return `permission denied on ${path} (usually mode 0666; run as root or make the device accessible to this user)`;
  return `cannot open ${path}: ${errno === undefined ? String(error) : describeErrno(sys, errno)}`;
}

/** The one-line reason TUNSETIFF refused `name`. */
function attachFailure(sys: NativeAddon, name: string, errno: number): string {
  if (errno === EPERM || errno === EACCES) {
    return (
      `permission denied: creating a TAP interface needs CAP_NET_ADMIN (run as root), or create it beforehand with ` +
      `\`ip tuntap add dev ${name} mode tap user $USER\` and then that user can open it`
    );
  }
  if (errno === EBUSY) return `${name} is in use by another process`;
  if (errno === EINVAL) return `${name} exists and is not a TAP interface this backend can attach to (a TUN device, another kind of link, or a multi_queue TAP)`;
  return `TUNSETIFF failed: ${describeErrno(sys, errno)}`;
}

function checkOptions(options: TapBackendOptions): { framesPerWakeup: number; devicePath: string } {
  const framesPerWakeup = options.framesPerWakeup ?? DEFAULT_TAP_FRAMES_PER_WAKEUP;
  if (!Number.isInteger(framesPerWakeup) || framesPerWakeup < 1 || framesPerWakeup > 65536) {
    throw new RangeError(`virtio-net: framesPerWakeup ${framesPerWakeup} must be an integer in [1, 65536]`);
  }
  const devicePath = options.devicePath ?? TAP_DEVICE_PATH;
  if (typeof devicePath !== 'string' || devicePath.length === 0) throw new TypeError('virtio-net: devicePath must be a non-empty string');
  return { framesPerWakeup, devicePath };
}

/**
 * A `NetBackend` over a Linux TAP interface. Open one with `openTapBackend(name)` (`TapBackend.open`).
 *
 * - Receive: while someone listens with `onFrame` and the backend is not paused, an FdWatcher waits for
 *   the fd to be readable; each wake-up reads up to `framesPerWakeup` frames (one read(2) each, into one
 *   reusable buffer, each copied into its own `Uint8Array` for `onFrame`) and then yields; the poll is
 *   level-triggered, so frames left over wake it again on the next loop iteration. `pause()` stops the
 *   watcher: frames then wait in the kernel's TAP queue (`txqueuelen` frames), and beyond it the kernel
 *   drops them and counts them in the interface's statistics. That is the right backpressure for a TAP
 *   device, which is a NIC to the host: a full NIC drops, and TCP in the host stack backs off. `resume()`
 *   starts a new watcher, which fires at once if frames are waiting.
 * - Transmit: `send` writes the frame with one write(2) and always returns true (`onWritable` never
 *   fires): a TAP device does not block a writer, it takes the frame or refuses it. A refused frame (the
 *   queue is full: EAGAIN/ENOBUFS; the interface is down: EIO; ENOMEM; EINVAL/EMSGSIZE) is dropped and
 *   counted in `framesDropped` (errno name in `lastDropReason`); any other error (EBADFD: the interface
 *   was deleted) closes the backend with a `TapError`.
 * - `close()` stops the watcher and closes the fd (once); `onClose` listeners are called on a later turn,
 *   with the error when the backend closed on its own (a read or write error, a poll error).
 */
export class TapBackend implements NetBackend {
  /** Frames read from the interface and handed to `onFrame`. */
  framesReceived = 0;
  /** Frames written to the interface. */
  framesSent = 0;
  /** Frames `send` dropped: refused by the kernel (see `lastDropReason`) or sent after the backend closed. */
  framesDropped = 0;
  /** Why the last frame was dropped: an errno name (`EIO`: the interface is down, ...) or `closed`. */
  lastDropReason: string | undefined;

  private readonly buffer = new Uint8Array(TAP_MAX_FRAME + 1);
  private readonly frameListeners = new Listeners<[Uint8Array]>();
  private readonly writableListeners = new Listeners<[]>();
  private readonly closeListeners = new Listeners<[Error | undefined]>();
  private watcher: NativeFdWatcher | undefined;
  private paused = false;
  private closedFlag = false;

  private constructor(
    private readonly sys: NativeAddon,
    private readonly fdNumber: number,
    /** The interface's name, as the kernel set it (a `%d` template numbered). */
    readonly name: string,
    /** Frames read per readability wake-up. */
    readonly framesPerWakeup: number,
  ) {}

  /**
   * Open the TAP interface `name` (creating it if it does not exist, which needs CAP_NET_ADMIN; an
   * interface made beforehand with `ip tuntap add dev NAME mode tap user USER` can be opened by USER).
   * Rejects with a one-line `TapError` naming the interface and the cause: no tun module, no permission,
   * in use by another process, not a TAP interface. The interface's own state (up, addresses) is left to
   * the caller (`ip link set NAME up`).
   */
  static async open(name: string, options: TapBackendOptions = {}): Promise<TapBackend> {
    checkTapName(name);
    const { framesPerWakeup, devicePath } = checkOptions(options);
    const { sys, tapFlags } = await loadKvmSys();
    const prefix = `virtio-net: cannot open TAP interface ${name}`;
    let fd: number;
    try {
      // Non-blocking (reads and writes never wait); Node adds O_CLOEXEC.
      fd = openSync(devicePath, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    } catch (error) {
      const errno = errnoOf(error);
      throw new TapError(`${prefix}: ${openFailure(sys, devicePath, errno, error)}`, errnoName(sys, errno), errno, { cause: error });
    }
    const result = sys.tunSetIff(fd, name, tapFlags);
    if (typeof result === 'number') {
      closeSync(fd);
      throw new TapError(`${prefix}: ${attachFailure(sys, name, -result)}`, sys.errnoName(-result), -result);
    }
    return new TapBackend(sys, fd, result, framesPerWakeup);
  }

  /** The TAP fd (-1 once closed). */
  get fd(): number {
    return this.closedFlag ? -1 : this.fdNumber;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Whether the fd is being watched (someone listens, not paused, not closed). */
  get reading(): boolean {
    return !this.paused && !this.closedFlag && this.frameListeners.size > 0;
  }

  send(frame: Uint8Array): boolean {
    if (this.closedFlag) {
      this.drop('closed');
      return true;
    }
    try {
      writeSync(this.fdNumber, frame); // a TAP write takes the whole frame or fails
      this.framesSent++;
    } catch (error) {
      const errno = errnoOf(error);
      if (errno !== undefined && DROP_ERRNOS.has(errno)) {
        this.drop(this.sys.errnoName(errno));
      } else {
        this.drop(errno === undefined ? 'error' : this.sys.errnoName(errno));
        this.fail('write', errno, error);
      }
    }
    return true;
  }

  onFrame(callback: (frame: Uint8Array) => void): () => void {
    const remove = this.frameListeners.add(callback);
    this.updateWatcher();
    return () => {
      remove();
      this.updateWatcher();
    };
  }

  /** Never fires: `send` never says full (see the class comment). */
  onWritable(callback: () => void): () => void {
    return this.writableListeners.add(callback);
  }

  onClose(callback: (error?: Error) => void): () => void {
    return this.closeListeners.add(callback);
  }

  pause(): void {
    this.paused = true;
    this.updateWatcher();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.updateWatcher(); // a new level-triggered watcher fires at once if frames are waiting
  }

  /** Stop reading and close the fd (the interface goes away unless it is persistent). Idempotent. */
  close(): void {
    this.shutdown(undefined);
  }

  private drop(reason: string): void {
    this.framesDropped++;
    this.lastDropReason = reason;
  }

  /** Watch the fd exactly while reading. */
  private updateWatcher(): void {
    if (this.reading && this.watcher === undefined) {
      try {
        this.watcher = new this.sys.FdWatcher(this.fdNumber, false, (result) => this.onPoll(result));
      } catch (error) {
        this.fail('poll', errnoOf(error), error);
      }
    } else if (!this.reading && this.watcher !== undefined) {
      this.watcher.close();
      this.watcher = undefined;
    }
  }

  private onPoll(result: bigint | number): void {
    if (this.closedFlag) return;
    this.readFrames();
    // A poll error (POLLERR: the interface was deleted) that read(2) did not already report.
    if (typeof result === 'number' && result < 0 && !this.closedFlag) this.fail('poll', -result, undefined);
  }

  private readFrames(): void {
    for (let i = 0; i < this.framesPerWakeup && this.reading; i++) {
      let n: number;
      try {
        n = readSync(this.fdNumber, this.buffer, 0, this.buffer.length, null);
      } catch (error) {
        const errno = errnoOf(error);
        if (errno === EAGAIN || errno === EWOULDBLOCK || errno === EINTR) return; // drained (or retry on the next wake-up)
        this.fail('read', errno, error);
        return;
      }
      if (n <= 0) return;
      this.framesReceived++;
      this.frameListeners.emit(this.buffer.slice(0, n)); // a copy: the buffer is reused
    }
  }

  private fail(what: string, errno: number | undefined, cause: unknown): void {
    if (this.closedFlag) return;
    const why = errno === undefined ? String(cause) : describeErrno(this.sys, errno);
    const hint = errno === EBADFD ? ': the interface was deleted' : '';
    this.shutdown(
      new TapError(`virtio-net: TAP interface ${this.name}: ${what} failed: ${why}${hint}`, errnoName(this.sys, errno), errno, cause === undefined ? undefined : { cause }),
    );
  }

  private shutdown(error: Error | undefined): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.watcher?.close();
    this.watcher = undefined;
    try {
      closeSync(this.fdNumber);
    } catch {
      // Nothing to do: the fd is released either way.
    }
    // Listeners run on a later turn, never from inside send/close.
    setImmediate(() => {
      this.closeListeners.emit(error);
      this.closeListeners.clear();
    });
  }
}

/** Open the TAP interface `name` as a `NetBackend` (see `TapBackend.open`). */
export function openTapBackend(name: string, options: TapBackendOptions = {}): Promise<TapBackend> {
  return TapBackend.open(name, options);
}
