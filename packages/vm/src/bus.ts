import { OnceLogger, silentLogger, type Logger } from './log.js';

/**
 * A device reachable through the bus. `offset` is relative to the base the device was registered
 * at; `data.length` is the access width (1, 2, 4 for port I/O; 1, 2, 4, 8 for MMIO). A read fills
 * `data` (it arrives pre-filled with all-ones, so a device may leave bytes it does not drive).
 * Values are little-endian in `data`, as KVM's `kvm_run` carries them.
 */
export interface BusDevice {
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

/**
 * Where a device publishes the values of its register reads that have no side effect, so that they can
 * be answered without reaching the device (`PioReadMirror` of @hype/kvm answers them on the vCPU
 * threads). The device calls `publish` for a register whenever what a read of it returns changes, and
 * before the change can be seen by the guest; `undefined` while a read of it has a side effect.
 */
export interface ReadMirror {
  /** `offset` as in BusDevice (from the device's base); `value` what a 1-byte read there returns now. */
  publish(offset: number, value: number | undefined): void;
}

/**
 * Where a device says which of its registers take *posted* writes: writes the VMM may deliver to the
 * device later, in order, in a batch (`CoalescedPio` has KVM queue them without an exit). A device posts a
 * register only while a write to it changes nothing the guest can observe before the next exit: no value
 * it publishes to its ReadMirror, no interrupt line, no answer the guest waits for. It calls `post` after
 * every change of state, before the change can be seen (like ReadMirror.publish); posted writes still in
 * flight when it withdraws are delivered, in order, before any later access reaches it.
 */
export interface PostedWrites {
  /** `offset` as in BusDevice; `posted` whether 1-byte writes there may be delivered late from now on. */
  post(offset: number, posted: boolean): void;
}

export type BusKind = 'pio' | 'mmio';

/** Largest address + 1 of each address space (ports are 16-bit; MMIO guest-physical below 2^52). */
const ADDRESS_LIMIT: Record<BusKind, number> = { pio: 0x1_0000, mmio: 2 ** 52 };

interface Range {
  base: number;
  /** Exclusive end. */
  end: number;
  name: string;
  device: BusDevice;
}

export class BusRegistrationError extends Error {
  override name = 'BusRegistrationError';
}

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Address ranges -> devices for one address space. Ranges never overlap (checked when registering).
 * An access that is not entirely inside one registered range is "absent": reads return all-ones,
 * writes are dropped, and each such address is logged once at debug level.
 */
export class Bus {
  /** Sorted by base; disjoint. */
  private readonly ranges: Range[] = [];
  private readonly absent: OnceLogger;

  constructor(
    readonly kind: BusKind,
    logger: Logger = silentLogger,
  ) {
    this.absent = new OnceLogger((m) => logger.debug(m));
  }

  register(base: number, length: number, device: BusDevice, name: string): void {
    const limit = ADDRESS_LIMIT[this.kind];
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0 || base + length > limit) {
      throw new BusRegistrationError(
        `${this.kind} bus: cannot register ${name} at ${hex(base)} length ${length}: outside the ${this.kind} address space (limit ${hex(limit)})`,
      );
    }
    const end = base + length;
    const at = this.insertionIndex(base);
    const before = this.ranges[at - 1];
    const after = this.ranges[at];
    const clash = before && before.end > base ? before : after && after.base < end ? after : undefined;
    if (clash) {
      throw new BusRegistrationError(
        `${this.kind} bus: ${name} [${hex(base)}, ${hex(end)}) overlaps ${clash.name} [${hex(clash.base)}, ${hex(clash.end)})`,
      );
    }
    this.ranges.splice(at, 0, { base, end, name, device });
  }

  /** Removes the range registered exactly at `base`; returns whether one was there. */
  unregister(base: number): boolean {
    const i = this.ranges.findIndex((r) => r.base === base);
    if (i < 0) return false;
    this.ranges.splice(i, 1);
    return true;
  }

  /** The registered ranges, in address order (for diagnostics). */
  list(): { base: number; length: number; name: string }[] {
    return this.ranges.map((r) => ({ base: r.base, length: r.end - r.base, name: r.name }));
  }

  /** Reads `data.length` bytes at `addr` into `data`. Returns whether a device handled it. */
  read(addr: number, data: Uint8Array): boolean {
    data.fill(0xff);
    const range = this.find(addr, data.length);
    if (!range) {
      this.absent.log1(`r${addr}`, () => `${this.kind} read of ${data.length} byte(s) at ${hex(addr)}: no device, returning all-ones`);
      return false;
    }
    try {
      range.device.read(addr - range.base, data);
    } catch (err) {
      throw new Error(`${this.kind} read at ${hex(addr)} (${range.name}) failed: ${(err as Error).message}`, { cause: err });
    }
    return true;
  }

  /** Writes `data` at `addr`. Returns whether a device handled it. */
  write(addr: number, data: Uint8Array): boolean {
    const range = this.find(addr, data.length);
    if (!range) {
      this.absent.log1(`w${addr}`, () => `${this.kind} write of ${data.length} byte(s) at ${hex(addr)}: no device, ignored`);
      return false;
    }
    try {
      range.device.write(addr - range.base, data);
    } catch (err) {
      throw new Error(`${this.kind} write at ${hex(addr)} (${range.name}) failed: ${(err as Error).message}`, { cause: err });
    }
    return true;
  }

  /** The range containing all of [addr, addr + length), if any. */
  private find(addr: number, length: number): Range | undefined {
    const i = this.insertionIndex(addr + 1) - 1;
    const r = this.ranges[i];
    return r && r.base <= addr && addr + length <= r.end ? r : undefined;
  }

  /** Index of the first range whose base is >= `addr`. */
  private insertionIndex(addr: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ranges[mid].base < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A port-I/O exit as KVM reports it (`kvm_run.io`), with its data bytes. */
export interface PioAccess {
  port: number;
  /** Bytes per element: 1, 2 or 4. */
  size: number;
  /** Elements (> 1 for `rep ins`/`rep outs`); `data.length === size * count`. */
  count: number;
  isWrite: boolean;
  data: Uint8Array;
}

/** Runs one port-I/O exit through `bus`, element by element (string I/O repeats the same port). */
export function dispatchPio(bus: Bus, access: PioAccess): void {
  const { port, size, count, data } = access;
  if (data.length < size * count) {
    throw new Error(`pio exit at ${hex(port)}: ${data.length} data bytes for ${count} x ${size}-byte elements`);
  }
  for (let i = 0; i < count; i++) {
    const element = data.subarray(i * size, (i + 1) * size);
    if (access.isWrite) bus.write(port, element);
    else bus.read(port, element);
  }
}
