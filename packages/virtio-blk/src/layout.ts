// Every byte layout and number of the virtio block device (virtio 1.2 §5.2), in one place; what all
// virtio devices share (device ids, transport feature bits) comes from @hype/virtio.
// Checked against Linux include/uapi/linux/virtio_blk.h in test/layout.test.ts.
import { DeviceId, Feature } from '@hype/virtio';

/** Device ID of a block device (virtio 1.2 §5.2.1): @hype/virtio's `DeviceId.BLOCK`. */
export const VIRTIO_ID_BLOCK = DeviceId.BLOCK;

export const SECTOR_SHIFT = 9;
/** Sectors are always 512 bytes, whatever blk_size says. */
export const SECTOR_SIZE = 1 << SECTOR_SHIFT;

/** Feature bit numbers (not masks). */
export const BlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/**
 * Transport-independent feature bit: the device is virtio 1.x (non-legacy). The transport offers it, not
 * the device.
 * @deprecated use `Feature.VERSION_1` from @hype/virtio (this is the same value).
 */
export const VIRTIO_F_VERSION_1 = Feature.VERSION_1;

/** Values of the request header's `type` field. */
export const BlkRequestType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  DISCARD: 11,
  WRITE_ZEROES: 13,
} as const;

/** Values of the status byte the device writes last. */
export const BlkStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;
export type BlkStatusCode = (typeof BlkStatus)[keyof typeof BlkStatus];

/** struct virtio_blk_outhdr: the device-readable header every request starts with (little-endian). */
export const REQUEST_HEADER = {
  type: 0, // le32
  ioprio: 4, // le32, "reserved" in virtio 1.2
  sector: 8, // le64
  SIZE: 16,
} as const;

/** Size of the status byte ending every request's device-writable part. */
export const STATUS_SIZE = 1;

/** struct virtio_blk_discard_write_zeroes: one segment of a DISCARD or WRITE_ZEROES request. */
export const DISCARD_SEGMENT = {
  sector: 0, // le64
  numSectors: 8, // le32
  flags: 12, // le32
  SIZE: 16,
} as const;

/** The only defined segment flag; valid for WRITE_ZEROES only (a DISCARD with it is UNSUPP). */
export const WRITE_ZEROES_FLAG_UNMAP = 0x1;

/** Length of the GET_ID device ID string (NUL-padded, no terminator when 20 bytes long). */
export const BLK_ID_BYTES = 20;

/** struct virtio_blk_config offsets (little-endian fields). */
export const BLK_CONFIG = {
  capacity: 0, // le64, in 512-byte sectors
  sizeMax: 8, // le32, VIRTIO_BLK_F_SIZE_MAX
  segMax: 12, // le32, VIRTIO_BLK_F_SEG_MAX
  geometryCylinders: 16, // le16, VIRTIO_BLK_F_GEOMETRY
  geometryHeads: 18, // u8
  geometrySectors: 19, // u8
  blkSize: 20, // le32, VIRTIO_BLK_F_BLK_SIZE
  physicalBlockExp: 24, // u8, VIRTIO_BLK_F_TOPOLOGY
  alignmentOffset: 25, // u8
  minIoSize: 26, // le16
  optIoSize: 28, // le32
  writeback: 32, // u8, VIRTIO_BLK_F_CONFIG_WCE
  numQueues: 34, // le16, VIRTIO_BLK_F_MQ
  maxDiscardSectors: 36, // le32, VIRTIO_BLK_F_DISCARD
  maxDiscardSeg: 40, // le32
  discardSectorAlignment: 44, // le32
  maxWriteZeroesSectors: 48, // le32, VIRTIO_BLK_F_WRITE_ZEROES
  maxWriteZeroesSeg: 52, // le32
  writeZeroesMayUnmap: 56, // u8
  /** Bytes of config space this device exposes: up to and including unused1[3] after write_zeroes_may_unmap. */
  SIZE: 60,
} as const;
