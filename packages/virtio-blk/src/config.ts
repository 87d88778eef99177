import type { BlockBackend } from './backend.js';
import type { BlkRequestLimits } from './request.js';
import { BLK_CONFIG, SECTOR_SIZE } from './layout.js';

/** Limits the device advertises in config space and enforces on DISCARD / WRITE_ZEROES. */
export interface BlkLimits {
  /** Largest single data descriptor, bytes (config size_max). Advisory for the driver. */
  sizeMax: number;
  /** Most data descriptors per request (config seg_max). Default: queue size - 2 (header + status). */
  segMax: number;
  /** Logical block size the guest uses (config blk_size): 512, or a power of two up to 4096. */
  blkSize: number;
  /** Most sectors in one DISCARD segment. */
  maxDiscardSectors: number;
  /** Most segments in one DISCARD request. */
  maxDiscardSeg: number;
  /** Most sectors in one WRITE_ZEROES segment. */
  maxWriteZeroesSectors: number;
  /** Most segments in one WRITE_ZEROES request. */
  maxWriteZeroesSeg: number;
}

export const DEFAULT_QUEUE_SIZE = 256;

export function defaultLimits(queueSize: number): BlkLimits {
  return {
    sizeMax: 1 << 20,
    segMax: queueSize - 2,
    blkSize: SECTOR_SIZE,
    maxDiscardSectors: 1 << 21, // 1 GiB
    maxDiscardSeg: 256, // Linux's MAX_DISCARD_SEGMENTS
    maxWriteZeroesSectors: 1 << 17, // 64 MiB: zeroes are real writes on a file backend
    maxWriteZeroesSeg: 16,
  };
}

/** Throws a one-line error naming the first limit that is not usable. */
export function checkLimits(l: BlkLimits): void {
  const u32 = (name: keyof BlkLimits, min: number) => {
    const v = l[name];
    if (!Number.isInteger(v) || v < min || v > 0xffff_ffff) throw new RangeError(`virtio-blk limit ${name}=${v}: must be an integer in [${min}, 2^32)`);
  };
  u32('sizeMax', 4096); // Linux rejects a size_max below PAGE_SIZE
  u32('segMax', 1);
  u32('maxDiscardSectors', 1);
  u32('maxDiscardSeg', 1);
  u32('maxWriteZeroesSectors', 1);
  u32('maxWriteZeroesSeg', 1);
  if (![512, 1024, 2048, 4096].includes(l.blkSize)) throw new RangeError(`virtio-blk limit blkSize=${l.blkSize}: must be 512, 1024, 2048 or 4096`);
}

export interface BlkConfigValues {
  capacitySectors: bigint;
  limits: BlkLimits;
  writeZeroesMayUnmap: boolean;
}

/** struct virtio_blk_config as bytes (little-endian). Fields of features not offered stay 0. */
export function buildConfigSpace(v: BlkConfigValues): Uint8Array {
  const bytes = new Uint8Array(BLK_CONFIG.SIZE);
  const dv = new DataView(bytes.buffer);
  const l = v.limits;
  dv.setBigUint64(BLK_CONFIG.capacity, v.capacitySectors, true);
  dv.setUint32(BLK_CONFIG.sizeMax, l.sizeMax, true);
  dv.setUint32(BLK_CONFIG.segMax, l.segMax, true);
  dv.setUint32(BLK_CONFIG.blkSize, l.blkSize, true);
  dv.setUint32(BLK_CONFIG.maxDiscardSectors, l.maxDiscardSectors, true);
  dv.setUint32(BLK_CONFIG.maxDiscardSeg, l.maxDiscardSeg, true);
  // Discard granularity = the logical block.
  dv.setUint32(BLK_CONFIG.discardSectorAlignment, l.blkSize / SECTOR_SIZE, true);
  dv.setUint32(BLK_CONFIG.maxWriteZeroesSectors, l.maxWriteZeroesSectors, true);
  dv.setUint32(BLK_CONFIG.maxWriteZeroesSeg, l.maxWriteZeroesSeg, true);
  bytes[BLK_CONFIG.writeZeroesMayUnmap] = v.writeZeroesMayUnmap ? 1 : 0;
  return bytes;
}

/** What request validation enforces for a disk with this backend and these limits. */
export function requestLimitsFor(backend: BlockBackend, limits: BlkLimits): BlkRequestLimits {
  return {
    capacitySectors: BigInt(Math.floor(backend.size / SECTOR_SIZE)),
    readOnly: backend.readOnly,
    discard: !backend.readOnly && typeof backend.discard === 'function',
    writeZeroes: !backend.readOnly && typeof backend.writeZeroes === 'function',
    maxDiscardSectors: limits.maxDiscardSectors,
    maxDiscardSeg: limits.maxDiscardSeg,
    maxWriteZeroesSectors: limits.maxWriteZeroesSectors,
    maxWriteZeroesSeg: limits.maxWriteZeroesSeg,
    maxDescriptors: limits.segMax + 2,
  };
}
