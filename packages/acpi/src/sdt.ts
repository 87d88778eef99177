/** The System Description Table header every table but the RSDP starts with (ACPI 6.5 §5.2.6). */
import { ascii, assertUint, checksumByte, dataView } from './bytes.js';

export const SDT_HEADER = {
  signature: 0,
  length: 4,
  revision: 8,
  checksum: 9,
  oemId: 10,
  oemTableId: 16,
  oemRevision: 24,
  creatorId: 28,
  creatorRevision: 32,
} as const;
export const SDT_HEADER_SIZE = 36;

/** OEMID (6 characters), in every table and the RSDP. */
export const OEM_ID = 'HYPE  ';
export const OEM_REVISION = 1;
/** Creator ID/revision: the tool that made the table (iasl puts "INTL" and its version here). */
export const CREATOR_ID = 'HYPE';
export const CREATOR_REVISION = 1;

export interface SdtIdentity {
  /** Four characters, e.g. "FACP". */
  signature: string;
  revision: number;
  /** Eight characters, padded with spaces. */
  oemTableId: string;
}

/**
 * Fills the header of `table` (its whole length, header included, body already written) and sets the
 * checksum so that all its bytes sum to 0 mod 256. Returns `table`.
 */
export function finishSdt(table: Uint8Array, id: SdtIdentity): Uint8Array {
  if (id.signature.length !== 4) throw new RangeError(`table signature "${id.signature}" is not 4 characters`);
  assertUint(id.revision, 8, 'table revision');
  const dv = dataView(table);
  table.set(ascii(id.signature), SDT_HEADER.signature);
  dv.setUint32(SDT_HEADER.length, table.length, true);
  dv.setUint8(SDT_HEADER.revision, id.revision);
  table.set(ascii(OEM_ID, 6), SDT_HEADER.oemId);
  table.set(ascii(id.oemTableId, 8), SDT_HEADER.oemTableId);
  dv.setUint32(SDT_HEADER.oemRevision, OEM_REVISION, true);
  table.set(ascii(CREATOR_ID, 4), SDT_HEADER.creatorId);
  dv.setUint32(SDT_HEADER.creatorRevision, CREATOR_REVISION, true);
  dv.setUint8(SDT_HEADER.checksum, 0);
  dv.setUint8(SDT_HEADER.checksum, checksumByte(table));
  return table;
}
