/**
 * Guest-physical memory as every hype package sees it (the loader writing a kernel, a device reading a
 * virtqueue, the VMM walking guest page tables): bounds-checked views of guest-physical ranges.
 *
 * A view is live (no copy): writes through it are writes to guest RAM, and the guest may change what it
 * shows at any time, so code that checks a value copies it out first.
 */
export interface GuestMemory {
  /**
   * A live view of guest-physical [gpa, gpa + length), or `undefined` if any byte of it is outside guest
   * RAM or the range crosses two RAM regions.
   */
  view(gpa: number, length: number): Uint8Array | undefined;
}

/**
 * Upper bound (exclusive) on any guest-physical address + length the helpers hand to `view`. Guest
 * values are u64; anything at or above 2^52 cannot be guest RAM on an amd64 host (52-bit physical
 * addresses at most) and would lose precision as a JS number, so it is rejected before arithmetic.
 */
export const GUEST_ADDRESS_LIMIT = 2 ** 52;

/** True if [gpa, gpa + length) is a well-formed range below GUEST_ADDRESS_LIMIT (not whether it is RAM). */
export function isGuestRange(gpa: number, length: number): boolean {
  return (
    Number.isSafeInteger(gpa) &&
    Number.isSafeInteger(length) &&
    gpa >= 0 &&
    length >= 0 &&
    gpa < GUEST_ADDRESS_LIMIT &&
    length <= GUEST_ADDRESS_LIMIT - gpa
  );
}

/**
 * `memory.view(gpa, length)` after checking the range is well-formed, and checking that the memory
 * object returned exactly `length` bytes (so a faulty GuestMemory cannot make callers index past a view).
 */
export function guestView(memory: GuestMemory, gpa: number, length: number): Uint8Array | undefined {
  if (!isGuestRange(gpa, length)) return undefined;
  const view = memory.view(gpa, length);
  if (view === undefined || view.length !== length) return undefined;
  return view;
}

/** Copy guest [gpa, gpa + dest.length) into `dest`. False (dest untouched) if not all of it is RAM. */
export function copyFromGuest(memory: GuestMemory, gpa: number, dest: Uint8Array): boolean {
  const v = guestView(memory, gpa, dest.length);
  if (v === undefined) return false;
  dest.set(v);
  return true;
}

/** Copy `src` to guest [gpa, gpa + src.length). False (nothing written) if not all of it is RAM. */
export function copyToGuest(memory: GuestMemory, gpa: number, src: Uint8Array): boolean {
  const v = guestView(memory, gpa, src.length);
  if (v === undefined) return false;
  v.set(src);
  return true;
}

/**
 * Guest RAM as one contiguous byte array starting at guest-physical `base`: what tests and simple
 * emulators use. Views are subarrays (live, no copy).
 */
export class ArrayGuestMemory implements GuestMemory {
  constructor(
    readonly bytes: Uint8Array,
    readonly base = 0,
  ) {}

  view(gpa: number, length: number): Uint8Array | undefined {
    if (!isGuestRange(gpa, length)) return undefined;
    const start = gpa - this.base;
    if (start < 0 || start + length > this.bytes.length) return undefined;
    return this.bytes.subarray(start, start + length);
  }
}
