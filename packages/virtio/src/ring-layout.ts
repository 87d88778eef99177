// Byte layout of a split virtqueue (virtio 1.2 §2.7), in one place.
// Checked against Linux include/uapi/linux/virtio_ring.h in test/layout.test.ts.

/** struct virtq_desc: 16 bytes, little-endian (§2.7.5). */
export const Desc = {
  SIZE: 16,
  ADDR: 0, // le64
  LEN: 8, // le32
  FLAGS: 12, // le16
  NEXT: 14, // le16
} as const;

/** virtq_desc.flags bits (§2.7.5). */
export const DescFlag = {
  NEXT: 1,
  WRITE: 2,
  INDIRECT: 4,
} as const;
/** Every flag bit a split-ring descriptor may carry; anything else is a malformed descriptor. */
export const DESC_KNOWN_FLAGS = DescFlag.NEXT | DescFlag.WRITE | DescFlag.INDIRECT;

/** struct virtq_avail (the "driver area", §2.7.6). */
export const Avail = {
  FLAGS: 0, // le16
  IDX: 2, // le16
  RING: 4, // le16[queueSize]
  ENTRY_SIZE: 2,
  /** used_event (only with VIRTIO_F_EVENT_IDX) sits right after the ring: at RING + 2 * queueSize. */
  usedEventOffset: (queueSize: number) => 4 + 2 * queueSize,
  /** Total size including used_event. */
  size: (queueSize: number) => 6 + 2 * queueSize,
} as const;

/** virtq_avail.flags: the driver asks not to be interrupted (ignored with EVENT_IDX). */
export const AVAIL_F_NO_INTERRUPT = 1;

/** struct virtq_used (the "device area", §2.7.8). */
export const Used = {
  FLAGS: 0, // le16
  IDX: 2, // le16
  RING: 4, // struct virtq_used_elem[queueSize]
  ELEM_SIZE: 8,
  ELEM_ID: 0, // le32: head descriptor index of the chain
  ELEM_LEN: 4, // le32: bytes written into the chain's device-writable buffers
  /** avail_event (only with VIRTIO_F_EVENT_IDX) sits right after the ring: at RING + 8 * queueSize. */
  availEventOffset: (queueSize: number) => 4 + 8 * queueSize,
  size: (queueSize: number) => 6 + 8 * queueSize,
} as const;

/** virtq_used.flags: the device asks not to be notified (ignored with EVENT_IDX). */
export const USED_F_NO_NOTIFY = 1;

/** Required alignment of each ring part (§2.7, table "Virtqueue Part Alignment"). */
export const RingAlign = {
  DESC: 16,
  AVAIL: 2,
  USED: 4,
} as const;

/** Largest queue size a split virtqueue can have (§2.7: Queue Size is at most 32768). */
export const MAX_QUEUE_SIZE = 32768;

/** Largest total length of one chain: used.len is a le32. */
export const MAX_CHAIN_BYTES = 0xffff_ffff;
