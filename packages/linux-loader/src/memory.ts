import { ArrayGuestMemory, type GuestMemory, guestView } from '@hype/guest-memory';
import { LoaderError, hex } from './errors.js';

// The loader writes into any GuestMemory (@hype/guest-memory: live views of guest-physical ranges).
export type { GuestMemory };

/**
 * A view that must exist; `what` names the object being written, for the error. Addresses often come
 * from the kernel image, so the range is checked for sanity (`guestView`) before memory is asked.
 */
export function mustView(mem: GuestMemory, gpa: number, length: number, what: string): Uint8Array {
  const v = length === 0 ? new Uint8Array(0) : guestView(mem, gpa, length);
  if (v === undefined) {
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

/** Guest memory over one `Uint8Array` starting at guest-physical `base` (tests, small tools): an ArrayGuestMemory. */
export function flatMemory(bytes: Uint8Array, base = 0): GuestMemory {
  return new ArrayGuestMemory(bytes, base);
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
