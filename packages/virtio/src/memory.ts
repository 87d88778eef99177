/**
 * Guest memory as the virtio code sees it: bounds-checked live views of guest-physical ranges.
 *
 * The shape is shared structurally across hype packages (declared again where needed, never imported
 * "up"). A view is live (no copy): writes through it are writes to guest RAM.
 */
export interface GuestMemory {
  /**
   * A live view of guest-physical [gpa, gpa + length), or `undefined` if any byte of it is outside guest
   * RAM (or the range crosses two RAM regions).
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

/** Combine the two 32-bit halves of a guest u64 address into a number, or -1 if >= GUEST_ADDRESS_LIMIT. */
export function joinAddress(low: number, high: number): number {
  const hi = high >>> 0;
  if (hi >= GUEST_ADDRESS_LIMIT / 2 ** 32) return -1;
  return hi * 2 ** 32 + (low >>> 0);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function readU8(memory: GuestMemory, gpa: number): number | undefined {
  const v = guestView(memory, gpa, 1);
  return v === undefined ? undefined : v[0];
}

export function readU16(memory: GuestMemory, gpa: number): number | undefined {
  const v = guestView(memory, gpa, 2);
  return v === undefined ? undefined : dataView(v).getUint16(0, true);
}

export function readU32(memory: GuestMemory, gpa: number): number | undefined {
  const v = guestView(memory, gpa, 4);
  return v === undefined ? undefined : dataView(v).getUint32(0, true);
}

export function readU64(memory: GuestMemory, gpa: number): bigint | undefined {
  const v = guestView(memory, gpa, 8);
  return v === undefined ? undefined : dataView(v).getBigUint64(0, true);
}

/** Writes return false (and write nothing) if the range is not guest RAM. */
export function writeU8(memory: GuestMemory, gpa: number, value: number): boolean {
  const v = guestView(memory, gpa, 1);
  if (v === undefined) return false;
  v[0] = value;
  return true;
}

export function writeU16(memory: GuestMemory, gpa: number, value: number): boolean {
  const v = guestView(memory, gpa, 2);
  if (v === undefined) return false;
  dataView(v).setUint16(0, value, true);
  return true;
}

export function writeU32(memory: GuestMemory, gpa: number, value: number): boolean {
  const v = guestView(memory, gpa, 4);
  if (v === undefined) return false;
  dataView(v).setUint32(0, value >>> 0, true);
  return true;
}

export function writeU64(memory: GuestMemory, gpa: number, value: bigint): boolean {
  const v = guestView(memory, gpa, 8);
  if (v === undefined) return false;
  dataView(v).setBigUint64(0, BigInt.asUintN(64, value), true);
  return true;
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
