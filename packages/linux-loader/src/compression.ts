import { LoaderError, formatMiB } from './errors.js';
import { LAYOUT, MiB, alignUp } from './layout.js';
import { lz4LegacyDecompress } from './lz4.js';

/** Payload formats of a bzImage (boot.rst, payload_offset), by magic number. */
export type PayloadFormat = 'gzip' | 'bzip2' | 'lzma' | 'xz' | 'lzo' | 'lz4' | 'zstd' | 'elf';
export type Compression = Exclude<PayloadFormat, 'elf'>;

/**
 * Host-side decompressors, by format. Each gets the compressed stream alone (for every format but gzip the
 * kernel build appends the decompressed size as 4 bytes; those are removed first) and the expected
 * decompressed size, and returns the decompressed bytes or throws. The expected size is already checked
 * against guest RAM; a decompressor must never produce more than it (the stream comes from the image and
 * may hold far more than its trailer says): it stops and throws once the output would exceed it.
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
export function unpackPayload(
  payload: Uint8Array,
  decompressors: Decompressors,
  who: string,
  /** Most bytes the output may have: the guest RAM the kernel must fit in. */
  maxBytes: number = LAYOUT.pciHoleStart,
): UnpackResult {
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
  if (expectedSize > maxBytes) throw tooBigToUnpack(who, format, expectedSize, maxBytes);
  const stream = format === 'gzip' ? payload : payload.subarray(0, tail);
  let out: Uint8Array;
  try {
    out = decompress(stream, expectedSize);
  } catch (e) {
    throw new LoaderError('decompress', `${who}: ${format} payload does not decompress: ${describe(e)}`);
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

/** Memory a kernel needs besides its unpacked image: below its load address (16 MiB) and to boot in. */
const UNPACK_OVERHEAD = 32 * MiB;

function tooBigToUnpack(who: string, format: Compression, size: number, maxBytes: number): LoaderError {
  const needed = alignUp(size + UNPACK_OVERHEAD, 16 * MiB);
  const fits = needed <= LAYOUT.pciHoleStart;
  const fix = fits
    ? `use --mem ${needed / MiB} or more, or a smaller kernel`
    : `it cannot fit below the PCI hole at ${formatMiB(LAYOUT.pciHoleStart)}, use a smaller kernel`;
  return new LoaderError(
    'memory',
    `${who}: the ${format} payload unpacks to ${formatMiB(size)}, more than the ${formatMiB(maxBytes)} of guest RAM: ${fix}`,
    fits ? needed / MiB : undefined,
  );
}

/** One line from whatever a decompressor threw. */
function describe(e: unknown): string {
  try {
    return String(e instanceof Error ? e.message : e).split('\n', 1)[0];
  } catch {
    return 'an error without a message';
  }
}
