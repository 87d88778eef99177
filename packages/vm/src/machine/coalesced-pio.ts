import type { CoalescedRing, CoalescedZone, CoalescedZoneOptions } from '@hype/kvm';
import type { Bus, PostedWrites } from '../bus.js';

/** What CoalescedPio needs of @hype/kvm's Vm (tests pass a fake). */
export interface CoalescedPioVm {
  coalescedZone(options: CoalescedZoneOptions): CoalescedZone;
}

/** What it needs of the ring (@hype/kvm's CoalescedRing). */
export type CoalescedPioRing = Pick<CoalescedRing, 'drain' | 'pending'>;

export interface CoalescedPioOptions {
  /** Shortest and longest wait between two looks at the ring while ports are posted. */
  pollMs?: { min: number; max: number };
  warn?(message: string): void;
  /**
   * A device failed on a write the timer delivered (an exit-time drain throws to its caller instead).
   * Without it (or when it throws), the error is thrown by the next `drain()`: never into the event loop.
   */
  onError?(error: unknown): void;
}

/** Writes sit in the ring at most this long while the guest keeps writing (then ~MAX_POLL_MS when idle). */
const MIN_POLL_MS = 5;
const MAX_POLL_MS = 100;

/**
 * Posted port writes (issue 15): device models say which 1-byte port writes may be delivered late
 * (`PostedWrites`), this registers those ports as coalesced zones so the guest's writes there go into
 * KVM's ring instead of exiting, and delivers them to the bus in order:
 *
 * - before any exit is handled (`drain()` at the top of the exit handler), so a device sees the posted
 *   writes that came before the access in front of it, as if each had exited;
 * - on a timer while ports are posted, since a guest that writes and then halts makes no exit: every
 *   MIN_POLL_MS while writes arrive, backing off to MAX_POLL_MS when none do;
 * - once more when the VM ends (`close()`), before the vCPU's mapping goes.
 *
 * A port a device withdraws is unregistered at once; writes already in the ring are delivered as above.
 * The ring holds 170 entries; when it is full KVM exits for the write as usual (which drains it first).
 */
export class CoalescedPio {
  readonly #vm: CoalescedPioVm;
  readonly #bus: Bus;
  readonly #zones = new Map<number, CoalescedZone>();
  readonly #minPollMs: number;
  readonly #maxPollMs: number;
  readonly #warn: (message: string) => void;
  readonly #onError: (error: unknown) => void;
  /** KVM refused a zone once: nothing is posted from then on. */
  #unavailable = false;
  /** A timer drain's failure nobody took (no onError): thrown by the next drain(). */
  #timerError: unknown;
  #ring: CoalescedPioRing | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pollMs: number;
  #polling = false;
  #closed = false;
  #delivered = 0;

  constructor(vm: CoalescedPioVm, bus: Bus, options: CoalescedPioOptions = {}) {
    this.#vm = vm;
    this.#bus = bus;
    this.#minPollMs = options.pollMs?.min ?? MIN_POLL_MS;
    this.#maxPollMs = options.pollMs?.max ?? MAX_POLL_MS;
    this.#pollMs = this.#minPollMs;
    this.#warn = options.warn ?? (() => {});
    this.#onError = options.onError ?? ((error) => {
      this.#timerError ??= error;
    });
  }

  /** Writes delivered from the ring so far (each one an exit saved). */
  get delivered(): number {
    return this.#delivered;
  }

  /** The ports registered as coalesced right now. */
  get postedPorts(): number[] {
    return [...this.#zones.keys()].sort((a, b) => a - b);
  }

  /** The PostedWrites of a device whose ports start at `base`. */
  forDevice(base: number): PostedWrites {
    return { post: (offset, posted) => this.post(base + offset, posted) };
  }

  /** Registers (`posted`) or unregisters `port` as a coalesced 1-byte zone; no ioctl when nothing changes. */
  post(port: number, posted: boolean): void {
    if (this.#closed || this.#unavailable || this.#zones.has(port) === posted) return;
    if (posted) {
      try {
        this.#zones.set(port, this.#vm.coalescedZone({ addr: port, size: 1, pio: true }));
      } catch (error) {
        // The writes keep exiting: slower, never wrong.
        this.#unavailable = true;
        this.#warn(`coalesced port I/O refused for port 0x${port.toString(16)} (${(error as Error).message}); port writes exit one by one`);
        return;
      }
      this.#schedule();
    } else {
      const zone = this.#zones.get(port)!;
      this.#zones.delete(port);
      zone.remove();
    }
  }

  /** Where the posted writes arrive (`Vm.coalescedRing()`, once a vCPU exists). */
  attach(ring: CoalescedPioRing): void {
    this.#ring = ring;
    this.#schedule();
  }

  /** Delivers every write in the ring to the bus, oldest first. Returns how many. */
  drain(): number {
    if (this.#timerError !== undefined) {
      const error = this.#timerError;
      this.#timerError = undefined;
      throw error;
    }
    const ring = this.#ring;
    if (!ring || !ring.pending) return 0;
    const n = ring.drain((port, data) => void this.#bus.write(port, data));
    this.#delivered += n;
    return n;
  }

  /** Starts the timer (run() calls this; before it no guest runs). */
  start(): void {
    this.#polling = true;
    this.#schedule();
  }

  /** Stops the timer, delivers what is left, unregisters every port. Idempotent. */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#polling = false;
    if (this.#closed) return;
    this.#closed = true;
    this.drain();
    for (const zone of this.#zones.values()) zone.remove();
    this.#zones.clear();
  }

  #schedule(): void {
    if (!this.#polling || this.#closed || this.#timer || !this.#ring || this.#zones.size === 0) return;
    this.#timer = setTimeout(() => this.#poll(), this.#pollMs);
    this.#timer.unref();
  }

  #poll(): void {
    this.#timer = undefined;
    let n = 0;
    try {
      n = this.drain();
    } catch (error) {
      try {
        this.#onError(error);
      } catch (thrown) {
        this.#timerError ??= thrown;
      }
      return;
    }
    this.#pollMs = n > 0 ? this.#minPollMs : Math.min(this.#pollMs * 2, this.#maxPollMs);
    this.#schedule();
  }
}
