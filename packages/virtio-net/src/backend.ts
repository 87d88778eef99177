// The interface between the virtio-net device and whatever carries its Ethernet frames (a TAP device,
// passt's socket, another VM, a user-space stack), and an in-memory implementation for tests and for
// connecting two devices in one process.

import { nextTurn } from '@hype/virtio';

/**
 * Where a `VirtioNetDevice`'s frames go and come from. Frames are plain Ethernet frames (destination
 * MAC first, no virtio header, no FCS), one `Uint8Array` each; ownership moves with the frame (the
 * receiver may keep it, the sender must not touch it again).
 *
 * Flow control both ways:
 * - Device → backend: `send` returns false when the backend is full; the frame was still taken, but the
 *   device sends nothing more until `onWritable` fires (so a backend holds at most its own buffer plus
 *   one frame).
 * - Backend → device: the device calls `pause()` when it cannot take more frames (the guest posts no
 *   receive buffers and the device's bounded queue is full) and `resume()` when it can again. A paused
 *   backend should stop calling the `onFrame` callback; frames it delivers anyway are dropped by the
 *   device once its queue is full (and counted).
 *
 * Callbacks are called from the event loop, never from inside `send`, `pause`, `resume` or `close` of
 * the same backend. Every `on*` returns a function that removes the callback.
 */
export interface NetBackend {
  /** Take one frame for the network. False: full, send no more until `onWritable`. */
  send(frame: Uint8Array): boolean;
  /** Frames from the network for the guest. */
  onFrame(callback: (frame: Uint8Array) => void): () => void;
  /** The backend can take frames again after `send` returned false. */
  onWritable(callback: () => void): () => void;
  /** Stop delivering frames until `resume()`. */
  pause(): void;
  resume(): void;
  /**
   * Optional: the backend went away on its own (the peer closed, an I/O error): once, with the error if
   * there was one. The device reports the link down and drops what the guest sends.
   */
  onClose?(callback: (error?: Error) => void): () => void;
  /** Release the backend (the VM is going away). Called once by `VirtioNetDevice.close()`. */
  close(): void | Promise<void>;
}

/** A list of callbacks, for backends: add returns the remover; emit calls each (a snapshot). */
export class Listeners<A extends unknown[]> {
  private readonly list: Array<(...args: A) => void> = [];

  add(callback: (...args: A) => void): () => void {
    if (typeof callback !== 'function') throw new TypeError('a callback must be a function');
    this.list.push(callback);
    return () => {
      const i = this.list.indexOf(callback);
      if (i >= 0) this.list.splice(i, 1);
    };
  }

  emit(...args: A): void {
    for (const callback of [...this.list]) callback(...args);
  }

  get size(): number {
    return this.list.length;
  }

  clear(): void {
    this.list.length = 0;
  }
}

/** Frames one end of an in-memory link holds for its receiver by default. */
export const DEFAULT_MEMORY_BACKEND_CAPACITY = 64;

export interface MemoryBackendOptions {
  /**
   * Frames waiting for each end's receiver (sent, not delivered: the receiver is paused or has no
   * `onFrame` yet), in [1, 65536]. `send` returns false when the peer holds this many; frames sent
   * beyond it are dropped (counted in `dropped`). Default 64.
   */
  readonly capacity?: number;
  /** Runs delivery on a later turn of the event loop. Default `setImmediate` (else `setTimeout(0)`). */
  readonly defer?: (callback: () => void) => void;
}

/**
 * One end of an in-memory Ethernet link (`createBackendPair`, `createLoopbackBackend`): a frame sent on
 * one end is delivered to the other end's `onFrame` on a later turn, in order. Each end holds at most
 * `capacity` frames for its receiver; `send` says false at that point and `onWritable` fires once the
 * receiver took frames again. Closing either end closes both (`onClose` on each).
 */
export class MemoryBackend implements NetBackend {
  /** Frames this end sent that the peer's receiver got or holds. */
  sent = 0;
  /** Frames sent on this end that were dropped: the peer already held `capacity` frames, or the link was closed. */
  dropped = 0;

  /** The other end (itself for a loopback). */
  peer: MemoryBackend = this;
  private readonly inbox: Uint8Array[] = [];
  private readonly frameListeners = new Listeners<[Uint8Array]>();
  private readonly writableListeners = new Listeners<[]>();
  private readonly closeListeners = new Listeners<[Error | undefined]>();
  private paused = false;
  private closed = false;
  private deliveryScheduled = false;
  /** `send` returned false and `onWritable` has not fired since. */
  private waitingWritable = false;

  constructor(
    readonly capacity: number,
    private readonly defer: (callback: () => void) => void,
  ) {}

  /** Frames waiting for this end's receiver. */
  get pending(): number {
    return this.inbox.length;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(frame: Uint8Array): boolean {
    const peer = this.peer;
    if (this.closed || peer.inbox.length >= peer.capacity) {
      this.dropped++;
      if (this.closed) return true; // nothing will ever drain: do not make the sender wait
      this.waitingWritable = true;
      return false;
    }
    this.sent++;
    peer.inbox.push(frame);
    peer.scheduleDelivery();
    if (peer.inbox.length >= peer.capacity) {
      this.waitingWritable = true;
      return false;
    }
    return true;
  }

  onFrame(callback: (frame: Uint8Array) => void): () => void {
    const remove = this.frameListeners.add(callback);
    this.scheduleDelivery();
    return remove;
  }

  onWritable(callback: () => void): () => void {
    return this.writableListeners.add(callback);
  }

  onClose(callback: (error?: Error) => void): () => void {
    return this.closeListeners.add(callback);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.scheduleDelivery();
  }

  /** Close both ends: frames in flight are dropped, `onClose` fires on each end (on a later turn). */
  close(): void {
    for (const end of new Set([this, this.peer])) {
      if (end.closed) continue;
      end.closed = true;
      end.inbox.length = 0;
      end.defer(() => {
        end.closeListeners.emit(undefined);
        end.closeListeners.clear();
      });
    }
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled || this.closed) return;
    this.deliveryScheduled = true;
    this.defer(() => {
      this.deliveryScheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    while (!this.paused && !this.closed && this.frameListeners.size > 0 && this.inbox.length > 0) {
      this.frameListeners.emit(this.inbox.shift()!);
    }
    const sender = this.peer;
    if (sender.waitingWritable && !this.closed && this.inbox.length < this.capacity) {
      sender.waitingWritable = false;
      sender.writableListeners.emit();
    }
  }
}

function checkCapacity(capacity: number): number {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) {
    throw new RangeError(`virtio-net: capacity ${capacity} must be an integer in [1, 65536]`);
  }
  return capacity;
}

/**
 * Two connected in-memory backends: what one end sends, the other receives. Give one to each of two
 * `VirtioNetDevice`s to put two guests on one Ethernet segment (no switch: frames go to the other end
 * whatever their destination MAC).
 */
export function createBackendPair(options: MemoryBackendOptions = {}): [MemoryBackend, MemoryBackend] {
  const capacity = checkCapacity(options.capacity ?? DEFAULT_MEMORY_BACKEND_CAPACITY);
  const defer = options.defer ?? nextTurn;
  const a = new MemoryBackend(capacity, defer);
  const b = new MemoryBackend(capacity, defer);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A backend that sends every frame straight back to its own receiver (a cable plugged into itself). */
export function createLoopbackBackend(options: MemoryBackendOptions = {}): MemoryBackend {
  return new MemoryBackend(checkCapacity(options.capacity ?? DEFAULT_MEMORY_BACKEND_CAPACITY), options.defer ?? nextTurn);
}
