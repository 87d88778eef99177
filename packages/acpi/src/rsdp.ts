/** Root System Description Pointer, ACPI 2.0+ form (ACPI 6.5 §5.2.5.3). */
import { ascii, assertAddress, checksumByte, dataView, setU64 } from './bytes.js';
import { OEM_ID } from './sdt.js';

export const RSDP = {
  signature: 0,
  /** Covers the first 20 bytes (the ACPI 1.0 structure). */
  checksum: 8,
  oemId: 9,
  revision: 15,
  rsdtAddress: 16,
  length: 20,
  xsdtAddress: 24,
  /** Covers all 36 bytes. */
  extendedChecksum: 32,
  reserved: 33,
} as const;
export const RSDP_SIZE = 36;
/** The ACPI 1.0 part the first checksum covers. */
export const RSDP_V1_SIZE = 20;
/** Revision 2: ACPI 2.0 or later, with Length, XsdtAddress and the extended checksum. */
export const RSDP_REVISION = 2;
/** Where the OS expects it: on a 16-byte boundary (§5.2.5.1). */
export const RSDP_ALIGNMENT = 16;

/** An RSDP that points at the XSDT only (RsdtAddress 0: there is no RSDT). */
export function buildRsdp(xsdtAddress: number): Uint8Array {
  assertAddress(xsdtAddress, 'XSDT address');
  const out = new Uint8Array(RSDP_SIZE);
  const dv = dataView(out);
  out.set(ascii('RSD PTR '), RSDP.signature);
  out.set(ascii(OEM_ID, 6), RSDP.oemId);
  dv.setUint8(RSDP.revision, RSDP_REVISION);
  dv.setUint32(RSDP.length, RSDP_SIZE, true);
  setU64(dv, RSDP.xsdtAddress, xsdtAddress);
  dv.setUint8(RSDP.checksum, checksumByte(out.subarray(0, RSDP_V1_SIZE)));
  dv.setUint8(RSDP.extendedChecksum, checksumByte(out));
  return out;
}
