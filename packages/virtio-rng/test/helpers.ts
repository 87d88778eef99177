import { VirtioTestDriver, type VirtioTestDriverOptions } from '@hype/virtio/testing';
import { EntropyDevice, type EntropyDeviceOptions } from '../src/index.js';

/** A source whose output is known: byte i of everything it ever produced is `(start + i) & 0xff`. */
export class CountingSource {
  produced = 0;
  calls: number[] = [];
  constructor(readonly start = 0) {}
  readonly fill = (dest: Uint8Array): void => {
    this.calls.push(dest.length);
    for (let i = 0; i < dest.length; i++) dest[i] = (this.start + this.produced + i) & 0xff;
    this.produced += dest.length;
  };
  /** The `length` bytes that start at stream offset `from`. */
  expected(from: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = (this.start + from + i) & 0xff;
    return out;
  }
}

/** A hand-cranked clock with timers, and a hand-cranked "later turn" queue. */
export class FakeScheduler {
  now = 0;
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  deferred: Array<() => void> = [];
  cleared = 0;

  readonly clock = (): number => this.now;
  readonly setTimer = (fn: () => void, ms: number): unknown => {
    const t = { at: this.now + ms, fn, cancelled: false };
    this.timers.push(t);
    return t;
  };
  readonly clearTimer = (handle: unknown): void => {
    (handle as { cancelled: boolean }).cancelled = true;
    this.cleared++;
  };
  readonly defer = (fn: () => void): void => {
    this.deferred.push(fn);
  };

  /** Timers set and neither fired nor cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** When the earliest pending timer is due (undefined if none). */
  get nextDue(): number | undefined {
    const live = this.timers.filter((t) => !t.cancelled);
    return live.length === 0 ? undefined : Math.min(...live.map((t) => t.at));
  }

  /** Move the clock forward, firing due timers in order (each at its own time). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.now = Math.max(this.now, due.at);
      due.cancelled = true;
      due.fn();
    }
    this.now = end;
  }

  /** Run the callbacks deferred to a later turn (and any they defer), at most `turns` rounds. */
  runDeferred(turns = Infinity): number {
    let rounds = 0;
    while (this.deferred.length > 0 && rounds < turns) {
      const batch = this.deferred.splice(0);
      for (const fn of batch) fn();
      rounds++;
    }
    return rounds;
  }
}

export interface Rig {
  drv: VirtioTestDriver;
  device: EntropyDevice;
  source: CountingSource;
  time: FakeScheduler;
}

/** An EntropyDevice with a counting source and fake time, behind the real transport, initialised. */
export function rig(options: Partial<EntropyDeviceOptions> = {}, driverOptions: VirtioTestDriverOptions = {}): Rig {
  const source = new CountingSource();
  const time = new FakeScheduler();
  const device = new EntropyDevice({
    source: source.fill,
    now: time.clock,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    defer: time.defer,
    ...options,
  });
  const drv = new VirtioTestDriver(device, driverOptions);
  drv.init();
  return { drv, device, source, time };
}

/** Byte equality without vitest's element-by-element deep diff (slow on 64 KiB arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
