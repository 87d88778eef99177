import { sum8 } from '../src/bytes.js';
import { SDT_HEADER } from '../src/sdt.js';

export const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
export const unhex = (text: string): Uint8Array => Uint8Array.from(text.replace(/\s+/g, '').match(/../g) ?? [], (h) => parseInt(h, 16));
export const dv = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
export const text = (bytes: Uint8Array, at: number, length: number): string => String.fromCharCode(...bytes.subarray(at, at + length));
export const u64 = (bytes: Uint8Array, at: number): number => Number(dv(bytes).getBigUint64(at, true));
export { sum8 };

/** The tables of a blob, as an OS finds them: RSDP -> XSDT -> FADT, MADT; FADT.X_DSDT -> DSDT. */
export function tableAt(blob: Uint8Array, base: number, address: number): Uint8Array {
  const offset = address - base;
  const length = dv(blob).getUint32(offset + SDT_HEADER.length, true);
  return blob.subarray(offset, offset + length);
}
