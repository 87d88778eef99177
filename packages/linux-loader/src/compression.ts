import { LoaderError } from './errors.js';
import { lz4LegacyDecompress } from './lz4.js';

/** Payload formats of a bzImage (boot.rst, payload_offset), by magic number. */
export type PayloadFormat = 'gzip' | 'bzip2' | 'lzma' | 'xz' | 'lzo' | 'lz4' | 'zstd' | 'elf';
export type Compression = Exclude<PayloadFormat, 'elf'>;

/**
 * Host-side decompressors, by format. Each gets the compressed stream alone (for every format but gzip the
 * kernel build appends the decompressed size as 4 bytes; those are removed first) and the expected
 * decompressed size, and returns the decompressed bytes or throws.
 */
export type Decompressor = (data: Uint8Array, expectedSize: number) => Uint8Array;
export type Decompressors = Partial<Record<Compression, Decompressor>>;

/** Decompressors that need nothing from the host: LZ4 (Debian's kernels) in pure TypeScript. */
export const builtinDecompressors: Decompressors = { lz4: lz4LegacyDecompress };

export function detectPayloadFormat(payload: Uint8Array): PayloadFormat | undefined {
  const [a, b, c, d] = payload;
  if (a === 0x1f && (b === 0x8b || b === 0x9e)) return 'gzip';
  if (a === 0x42 && b === 0x5a) return 'bzip2';
  if (a === 0x5d && b === 0x00) return 'lzma';
  if (a === 0xfd && b === 0x37) return 'xz';
  if (a === 0x89 && b === 0x4c && c === 0x5a && d === 0x4f) return 'lzo';
  if (a === 0x02 && b === 0x21) return 'lz4';
  if (a === 0x28 && b === 0xb5) return 'zstd';
  if (a === 0x7f && b === 0x45 && c === 0x4c && d === 0x46) return 'elf';
  return undefined;
}

export type UnpackResult =
  | { ok: true; format: PayloadFormat; elf: Uint8Array }
  /** No decompressor for this format: boot the bzImage and let the guest decompress itself. */
  | { ok: false; format: PayloadFormat | undefined; reason: string };

/**
 * Decompress a bzImage payload on the host. The result must start with an ELF header (the kernel's
 * vmlinux, possibly followed by its relocation table). A known format without a decompressor is not an
 * error (the caller falls back to the guest's own decompressor); a decompressor that fails, or output of
 * the wrong size or not ELF, is.
 */
export function unpackPayload(payload: Uint8Array, decompressors: Decompressors, who: string): UnpackResult {
  const format = detectPayloadFormat(payload);
  if (format === undefined) {
    const magic = Array.from(payload.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ');
    return { ok: false, format, reason: `payload format unknown (magic ${magic})` };
  }
  if (format === 'elf') return { ok: true, format, elf: payload };
  const decompress = decompressors[format];
  if (!decompress) return { ok: false, format, reason: `no host decompressor for ${format}` };
  if (payload.length < 8) throw new LoaderError('format', `${who}: ${format} payload truncated (${payload.length} bytes)`);
  // The last 4 bytes hold the decompressed size: gzip's own ISIZE, or the size the kernel build appends.
  const tail = payload.length - 4;
  const expectedSize =
    (payload[tail] | (payload[tail + 1] << 8) | (payload[tail + 2] << 16) | (payload[tail + 3] << 24)) >>> 0;
  const stream = format === 'gzip' ? payload : payload.subarray(0, tail);
  let out: Uint8Array;
  try {
    out = decompress(stream, expectedSize);
  } catch (e) {
    throw new LoaderError('decompress', `${who}: ${format} payload does not decompress: ${(e as Error).message}`);
  }
  if (out.length !== expectedSize) {
    throw new LoaderError(
      'decompress',
      `${who}: ${format} payload decompressed to ${out.length} bytes, the image says ${expectedSize}`,
    );
  }
  if (detectPayloadFormat(out) !== 'elf') {
    throw new LoaderError('format', `${who}: decompressed ${format} payload is not an ELF vmlinux`);
  }
  return { ok: true, format, elf: out };
}
