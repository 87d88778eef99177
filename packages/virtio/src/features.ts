// Feature bits, status bits and device IDs shared by all virtio devices (virtio 1.2 §2.1, §2.2, §5, §6),
// in one place. Checked against Linux include/uapi/linux/virtio_{config,ring,ids}.h in test/layout.test.ts.

/** Reserved (device-independent) feature bit numbers. */
export const Feature = {
  /** Descriptors may point to indirect descriptor tables (§2.7.5.3). */
  RING_INDIRECT_DESC: 28,
  /** used_event / avail_event notification suppression (§2.7.7, §2.7.10). */
  RING_EVENT_IDX: 29,
  /** Non-legacy device: required by this transport (virtio-mmio v2). */
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  RING_RESET: 40,
} as const;

/** Feature bits 28..41 (inclusive) belong to the transport/ring, not to the device type. */
export const TRANSPORT_FEATURE_FIRST = 28;
export const TRANSPORT_FEATURE_LAST = 41;

/** `1n << BigInt(bit)`. */
export function featureMask(bit: number): bigint {
  return 1n << BigInt(bit);
}

export function hasFeature(features: bigint, bit: number): boolean {
  return (features & featureMask(bit)) !== 0n;
}

/** Bits of all transport/ring features (28..41). */
export const TRANSPORT_FEATURES_MASK = ((1n << BigInt(TRANSPORT_FEATURE_LAST + 1)) - 1n) & ~((1n << BigInt(TRANSPORT_FEATURE_FIRST)) - 1n);

/** Device status bits (§2.1). */
export const Status = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Device IDs (§5). */
export const DeviceId = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  RNG: 4,
  VSOCK: 19,
} as const;
