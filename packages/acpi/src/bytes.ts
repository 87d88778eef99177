/** Byte helpers shared by the AML encoder and the table builders. */

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `text` as ASCII bytes, padded with `pad` (or exactly `text.length` bytes without a width). */
export function ascii(text: string, width: number = text.length, pad = ' '): Uint8Array {
  if (text.length > width) throw new RangeError(`"${text}" is longer than ${width} characters`);
  const padded = text + pad.repeat(width - text.length);
  const out = new Uint8Array(width);
  for (let i = 0; i < width; i++) {
    const c = padded.charCodeAt(i);
    if (c > 0x7e) throw new RangeError(`"${text}" is not ASCII`);
    out[i] = c;
  }
  return out;
}

export function sum8(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}

/** The byte that, stored in a zeroed checksum field, makes `bytes` sum to 0 mod 256. */
export const checksumByte = (bytes: Uint8Array): number => (256 - sum8(bytes)) & 0xff;

export const dataView = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export function assertUint(value: number, bits: 8 | 16 | 32, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new RangeError(`${what} ${value} does not fit in ${bits} bits`);
  }
}

/** A guest-physical address: a non-negative safe integer (JS numbers cover 2^53, beyond any guest). */
export function assertAddress(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} ${value} is not a valid address`);
}

export const setU64 = (dv: DataView, offset: number, value: number): void => dv.setBigUint64(offset, BigInt(value), true);

export const alignUp = (n: number, align: number): number => Math.ceil(n / align) * align;
