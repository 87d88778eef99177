/**
 * LZ4 "legacy" frame decoder, the format of an LZ4-compressed Linux kernel payload (`lz4 -l`, as read by
 * the kernel's lib/decompress_unlz4.c): magic 0x184C2102, then blocks of [u32 compressed size][LZ4 block],
 * each decompressing independently to at most 8 MiB. Pure TypeScript and bounded: malformed input throws,
 * never reads or writes out of range.
 */

export const LZ4_LEGACY_MAGIC = 0x184c2102;
const LEGACY_BLOCK_MAX = 8 << 20;

/**
 * LZ4 output per input byte is below 255 (a match-length byte adds at most 255 bytes and every sequence
 * costs a token and an offset), so a claim beyond this many times the input is false.
 */
const MAX_EXPANSION = 255;

/**
 * Decode a legacy-frame stream whose total decompressed size is `expectedSize`. The output buffer is
 * allocated at that size (the caller bounds it by guest RAM) only if the input can expand to it, and
 * decoding never writes past it.
 */
export function lz4LegacyDecompress(src: Uint8Array, expectedSize: number): Uint8Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  if (src.length < 4 || dv.getUint32(0, true) !== LZ4_LEGACY_MAGIC) {
    throw new Error('lz4: no legacy frame magic 02 21 4c 18');
  }
  if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) throw new Error(`lz4: bad output size ${expectedSize}`);
  if (expectedSize > src.length * MAX_EXPANSION) {
    throw new Error(`lz4: ${src.length} bytes cannot expand to the ${expectedSize} bytes claimed`);
  }
  const out = new Uint8Array(expectedSize);
  let inPos = 4;
  let outPos = 0;
  while (src.length - inPos >= 4) {
    const chunk = dv.getUint32(inPos, true);
    inPos += 4;
    if (chunk === LZ4_LEGACY_MAGIC) continue;
    if (chunk === 0) break;
    if (chunk > src.length - inPos) throw new Error(`lz4: block of ${chunk} bytes at offset ${inPos - 4} runs past the end of the data`);
    const limit = Math.min(out.length, outPos + LEGACY_BLOCK_MAX);
    outPos = lz4DecodeBlock(src, inPos, inPos + chunk, out, outPos, limit);
    inPos += chunk;
  }
  if (outPos !== expectedSize) throw new Error(`lz4: decoded ${outPos} bytes, expected ${expectedSize}`);
  return out;
}

/**
 * Decode one LZ4 block src[start, end) into dst from `dstStart`, never past `dstLimit`. Matches may only
 * refer to bytes this block produced. Returns the new output position.
 */
export function lz4DecodeBlock(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  dstStart: number,
  dstLimit: number,
): number {
  let ip = start;
  let op = dstStart;
  for (;;) {
    if (ip >= end) throw new Error('lz4: block ends without a final literal run');
    const token = src[ip++];
    let litLen = token >>> 4;
    if (litLen === 15) {
      let b: number;
      do {
        if (ip >= end) throw new Error('lz4: truncated literal length');
        b = src[ip++];
        litLen += b;
      } while (b === 255);
    }
    if (litLen > end - ip) throw new Error('lz4: literal run past the end of the block');
    if (litLen > dstLimit - op) throw new Error('lz4: output larger than expected');
    if (litLen < 32) {
      // Short runs dominate; a loop beats creating a subarray for each.
      for (let k = 0; k < litLen; k++) dst[op + k] = src[ip + k];
    } else {
      dst.set(src.subarray(ip, ip + litLen), op);
    }
    ip += litLen;
    op += litLen;
    if (ip === end) return op; // the last sequence has literals only
    if (end - ip < 2) throw new Error('lz4: truncated match offset');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op - dstStart) throw new Error(`lz4: match offset ${offset} outside the block`);
    let matchLen = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= end) throw new Error('lz4: truncated match length');
        b = src[ip++];
        matchLen += b;
      } while (b === 255);
    }
    if (matchLen > dstLimit - op) throw new Error('lz4: output larger than expected');
    const from = op - offset;
    if (matchLen < 32) {
      // Byte by byte is also right for overlapping matches (offset < length): the pattern repeats.
      for (let k = 0; k < matchLen; k++) dst[op + k] = dst[from + k];
      op += matchLen;
    } else if (offset >= matchLen) {
      dst.copyWithin(op, from, from + matchLen);
      op += matchLen;
    } else {
      // Overlapping match: a repeating pattern, copied forward in pieces of `offset` bytes.
      const stop = op + matchLen;
      while (op < stop) {
        const n = Math.min(op - from, stop - op);
        dst.copyWithin(op, from, from + n);
        op += n;
      }
    }
  }
}
