/**
 * Hand-cranked time for devices that take their clock and scheduling as options (virtio-rng's
 * `EntropyDevice`: `now`, `setTimer`, `clearTimer`, `defer`; virtio-vsock's `VsockDevice`: `setTimer`,
 * `clearTimer`, `defer`). Nothing happens on its own: `advance(ms)` moves the clock and fires the timers
 * that come due, `runDeferred(turns)` runs the callbacks deferred to a later turn.
 *
 * ```ts
 * const time = new FakeClock();
 * const device = new EntropyDevice({ now: time.clock, setTimer: time.setTimer, clearTimer: time.clearTimer, defer: time.defer });
 * time.advance(20);     // timers due by now + 20 fire, each with `now` at its own due time
 * time.runDeferred(1);  // one later turn: what was deferred so far (not what that defers)
 * ```
 *
 * The four functions are bound (pass them as they are). Timer handles are opaque; `clearTimer` of a
 * handle that fired, was cleared already or is not this clock's does nothing (but is still counted).
 */
export class FakeClock {
  /** The current time in milliseconds, from 0. */
  now = 0;
  /** Callbacks deferred and not run yet, in order (what the next `runDeferred(1)` runs). */
  readonly deferred: Array<() => void> = [];
  /** How many times `clearTimer` was called. */
  cleared = 0;

  /** Timers set and neither fired nor cleared, in the order they were set. */
  private readonly timers = new Set<{ readonly at: number; readonly fn: () => void }>();

  /** The clock as a function: a device's `now` option. */
  readonly clock = (): number => this.now;

  /** Starts a timer that fires `ms` after `now` (during an `advance` that reaches it). Returns its handle. */
  readonly setTimer = (fn: () => void, ms: number): unknown => {
    const timer = { at: this.now + ms, fn };
    this.timers.add(timer);
    return timer;
  };

  /** Cancels the timer `setTimer` returned as `handle`. */
  readonly clearTimer = (handle: unknown): void => {
    this.cleared++;
    this.timers.delete(handle as { at: number; fn: () => void });
  };

  /** Queues `fn` for a later turn (`runDeferred`). */
  readonly defer = (fn: () => void): void => {
    this.deferred.push(fn);
  };

  /** Timers set and neither fired nor cleared. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** When the earliest pending timer is due (undefined if none). */
  get nextDue(): number | undefined {
    return this.earliest()?.at;
  }

  /**
   * Moves the clock forward `ms`, firing the timers due by then in due order (ties in the order they were
   * set), each with `now` at its own due time; a timer set by one that fires runs too if it comes due in
   * the window. Ends with `now` at the old `now + ms`.
   */
  advance(ms: number): void {
    const end = this.now + ms;
    for (let due = this.earliest(); due !== undefined && due.at <= end; due = this.earliest()) {
      this.timers.delete(due);
      this.now = Math.max(this.now, due.at);
      due.fn();
    }
    this.now = end;
  }

  /**
   * Runs the deferred callbacks, one turn at a time: a turn runs what was deferred before it started, and
   * what those defer waits for the next turn. At most `turns` turns (default: until none is left).
   * Returns the number of turns run.
   */
  runDeferred(turns = Infinity): number {
    let rounds = 0;
    while (this.deferred.length > 0 && rounds < turns) {
      const batch = this.deferred.splice(0);
      for (const fn of batch) fn();
      rounds++;
    }
    return rounds;
  }

  private earliest(): { readonly at: number; readonly fn: () => void } | undefined {
    let first: { readonly at: number; readonly fn: () => void } | undefined;
    for (const t of this.timers) if (first === undefined || t.at < first.at) first = t;
    return first;
  }
}
