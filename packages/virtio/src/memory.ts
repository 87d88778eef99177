// Guest memory comes from @hype/guest-memory (one definition for every hype package); what is here is
// virtio's own: guest u64 addresses from two 32-bit register halves, and the little-endian accessors the
// rings use.
import { GUEST_ADDRESS_LIMIT, type GuestMemory, guestView } from '@hype/guest-memory';

export {
  type GuestMemory,
  GUEST_ADDRESS_LIMIT,
  isGuestRange,
  guestView,
  copyFromGuest,
  copyToGuest,
  ArrayGuestMemory,
} from '@hype/guest-memory';

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
