import { LoaderError, hex } from './errors.js';

/**
 * Guest-physical memory as the loader sees it: a live view (no copy) of [gpa, gpa + length), or
 * `undefined` if any byte is outside guest RAM or the range crosses two RAM regions.
 */
export interface GuestMemory {
  view(gpa: number, length: number): Uint8Array | undefined;
}

/** A view that must exist; `what` names the object being written, for the error. */
export function mustView(mem: GuestMemory, gpa: number, length: number, what: string): Uint8Array {
  const v = length === 0 ? new Uint8Array(0) : mem.view(gpa, length);
  if (v === undefined || v.length !== length) {
    throw new LoaderError(
      'memory',
      `${what} at ${hex(gpa)}-${hex(gpa + length)} (${length} bytes) is outside guest RAM`,
    );
  }
  return v;
}

export function writeBytes(mem: GuestMemory, gpa: number, bytes: Uint8Array, what: string): void {
  mustView(mem, gpa, bytes.length, what).set(bytes);
}

export function zeroBytes(mem: GuestMemory, gpa: number, length: number, what: string): void {
  mustView(mem, gpa, length, what).fill(0);
}

export function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Guest memory over one `Uint8Array` starting at guest-physical `base` (tests, small tools). */
export function flatMemory(bytes: Uint8Array, base = 0): GuestMemory {
  return {
    view(gpa, length) {
      if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || length < 0) return undefined;
      if (gpa < base || gpa + length > base + bytes.length) return undefined;
      return bytes.subarray(gpa - base, gpa - base + length);
    },
  };
}

/** Guest memory made of several disjoint regions (e.g. below and above the PCI hole). */
export function regionMemory(regions: ReadonlyArray<{ gpa: number; bytes: Uint8Array }>): GuestMemory {
  return {
    view(gpa, length) {
      for (const r of regions) {
        const m = flatMemory(r.bytes, r.gpa).view(gpa, length);
        if (m) return m;
      }
      return undefined;
    },
  };
}
