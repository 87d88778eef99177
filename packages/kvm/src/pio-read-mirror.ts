import { addon, pioReadMirrorLayout, pioReadMirrorWord, type NativeMapping } from '@hype/kvm-sys';

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Values of 1-byte port reads that vCPU threads answer themselves, without an exit reaching JavaScript
 * (pass it to `Vcpu.start(handler, { pioReadMirror })`; one mirror serves every vCPU of a VM).
 *
 * A device model publishes here what a read of one of its registers returns **while that read has no
 * side effect**, and takes the value away (`set(port, undefined)`) while it has one; it republishes after
 * every change of its state, before the change can be seen (before it raises an interrupt, before the vCPU
 * whose access caused it resumes). A 1-byte IN from a published port then reads the published value on
 * the vCPU thread; any other access (OUT, wider or string IN, an unpublished port) still reaches the
 * exit handler. The device semantics stay in the model: this is only its published data.
 *
 * Holds at most `pioReadMirrorLayout.entries` (16) ports; `set` returns false for a new port when it is
 * full (reads of that port keep exiting). Each entry is one 32-bit word written with Atomics.store, so a
 * vCPU thread sees either the old or the new value of an entry, never a mix. The words live in an mmap'd
 * region, not a SharedArrayBuffer, so the JavaScript memory model promises nothing across threads here:
 * this relies on V8 compiling Atomics.store on an aligned Int32Array to one 32-bit store (a locked
 * `xchg` on x86-64), which the vCPU thread reads with an acquire load. x86-64 is the only target.
 */
export class PioReadMirror implements Disposable {
  readonly #mapping: NativeMapping;
  readonly #words: Int32Array;
  /** port -> entry index */
  readonly #slots = new Map<number, number>();
  /** What each entry holds (the word), so unchanged values are not stored again. */
  readonly #published: Int32Array;

  constructor() {
    const native = addon();
    this.#mapping = new native.Mapping(Math.max(native.pageSize, pioReadMirrorLayout.size));
    this.#words = new Int32Array(this.#mapping.buffer!, 0, pioReadMirrorLayout.entries);
    this.#published = new Int32Array(pioReadMirrorLayout.entries);
  }

  /** @internal The table, for the vCPU threads. */
  get mapping(): NativeMapping {
    return this.#mapping;
  }

  get closed(): boolean {
    return this.#mapping.closed;
  }

  /**
   * Publishes `value` (0-255) as what a 1-byte read of `port` returns, or with `undefined` sends reads of
   * `port` to the exit handler again. Returns false only when `port` is new and the table is full.
   */
  set(port: number, value: number | undefined): boolean {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`PioReadMirror.set: port ${port} is not a 16-bit port`);
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 0xff)) {
      throw new RangeError(`PioReadMirror.set: value ${value} for port ${hex(port)} is not a byte`);
    }
    if (this.closed) return value === undefined;
    let slot = this.#slots.get(port);
    if (slot === undefined) {
      if (value === undefined) return true;
      if (this.#slots.size >= pioReadMirrorLayout.entries) return false;
      slot = this.#slots.size;
      this.#slots.set(port, slot);
    }
    const word = value === undefined ? 0 : pioReadMirrorWord(port, value);
    if (this.#published[slot] !== word) {
      this.#published[slot] = word;
      Atomics.store(this.#words, slot, word);
    }
    return true;
  }

  /** What a 1-byte read of `port` returns on the vCPU thread, or undefined when it exits. */
  get(port: number): number | undefined {
    const slot = this.#slots.get(port);
    if (slot === undefined || this.closed) return undefined;
    const word = Atomics.load(this.#words, slot);
    return word & pioReadMirrorLayout.validBit ? word & pioReadMirrorLayout.valueMask : undefined;
  }

  /** Unmaps the table. A vCPU thread still using it (one that did not end) keeps it mapped instead. */
  close(): void {
    try {
      this.#mapping.close();
    } catch {
      // pinned by a running vCPU thread: it stays mapped for good, like that thread's kvm_run page
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
