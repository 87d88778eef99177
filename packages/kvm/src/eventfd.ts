import { addon, type NativeFdWatcher } from '@hype/kvm-sys';
import { check, closedError, KvmError } from './errors.js';

const EAGAIN = 11;

/** A watch on an EventFd: the callback runs on the event loop with the count drained. */
export interface EventFdWatch {
  close(): void;
  /** Let this watch keep the process alive (the default) or not. */
  ref(): void;
  unref(): void;
}

/** A non-blocking eventfd (what KVM_IOEVENTFD signals and KVM_IRQFD listens to). */
export class EventFd implements Disposable {
  #fd: number;
  #watch: NativeFdWatcher | undefined;

  constructor(initialValue = 0) {
    this.#fd = check(addon().eventfd(initialValue), 'eventfd');
  }

  /** The file descriptor (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Adds `value` to the counter (wakes a watcher, or makes KVM inject an irqfd's interrupt). */
  write(value: number | bigint = 1): void {
    check(addon().eventfdWrite(this.#open(), value), 'eventfd write');
  }

  /** Returns the counter and resets it; 0n when nothing was written since the last read. */
  read(): bigint {
    const result = addon().eventfdRead(this.#open());
    if (typeof result === 'bigint') return result;
    if (result === -EAGAIN) return 0n;
    throw new KvmError('eventfd read', -result);
  }

  /** Calls `callback(count)` on the event loop whenever the counter becomes non-zero (one watch at a time). */
  watch(callback: (count: bigint) => void): EventFdWatch {
    if (this.#watch && !this.#watch.closed) throw new Error('this EventFd is already watched');
    const watcher = new (addon().FdWatcher)(this.#open(), true, (result) => {
      if (typeof result === 'bigint') callback(result);
      else throw new KvmError('eventfd watch', -result);
    });
    this.#watch = watcher;
    return {
      close: () => watcher.close(),
      ref: () => watcher.ref(),
      unref: () => watcher.unref(),
    };
  }

  close(): void {
    if (this.#fd < 0) return;
    this.#watch?.close();
    this.#watch = undefined;
    addon().close(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#fd < 0) throw closedError('EventFd');
    return this.#fd;
  }
}
