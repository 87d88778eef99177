/**
 * Work a device does on a later turn of the event loop: what did not fit a bounded turn, and whatever
 * must not run inside the caller (a notification, a backend callback).
 */

/** Runs `callback` on a later turn: `setImmediate` where there is one, else `setTimeout(0)`. */
export function nextTurn(callback: () => void): void {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  if (immediate !== undefined) immediate(callback);
  else setTimeout(callback, 0);
}

/**
 * One unit of a device's deferred work: at most one turn pending, and a turn queued before the device's
 * epoch moved on (bumped by activation, reset and close) does nothing when it comes.
 */
export class DeferredWork {
  private pending = false;

  constructor(
    private readonly defer: (callback: () => void) => void,
    private readonly epoch: () => number,
    private readonly work: () => void,
  ) {}

  /** Queues the work for a later turn, unless a turn is pending already. */
  schedule(): void {
    if (this.pending) return;
    this.pending = true;
    const epoch = this.epoch();
    this.defer(() => {
      if (epoch !== this.epoch()) return;
      this.pending = false;
      this.work();
    });
  }

  /** Forgets the pending turn (call with the epoch bump): the next schedule() queues a new one. */
  cancel(): void {
    this.pending = false;
  }
}
