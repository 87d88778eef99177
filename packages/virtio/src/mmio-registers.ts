// virtio-mmio (version 2) register file (virtio 1.2 §4.2.2), in one place.
// Checked against Linux include/uapi/linux/virtio_mmio.h in test/layout.test.ts.

/** Register offsets within a device's MMIO window. */
export const MmioReg = {
  MAGIC_VALUE: 0x000, // R: 0x74726976 ("virt")
  VERSION: 0x004, // R: 2
  DEVICE_ID: 0x008, // R
  VENDOR_ID: 0x00c, // R
  DEVICE_FEATURES: 0x010, // R: 32 bits selected by DEVICE_FEATURES_SEL
  DEVICE_FEATURES_SEL: 0x014, // W
  DRIVER_FEATURES: 0x020, // W: 32 bits selected by DRIVER_FEATURES_SEL
  DRIVER_FEATURES_SEL: 0x024, // W
  /** Legacy (version 1) only. */
  GUEST_PAGE_SIZE: 0x028,
  QUEUE_SEL: 0x030, // W
  QUEUE_NUM_MAX: 0x034, // R
  QUEUE_NUM: 0x038, // W
  /** Legacy (version 1) only. */
  QUEUE_ALIGN: 0x03c,
  /** Legacy (version 1) only. */
  QUEUE_PFN: 0x040,
  QUEUE_READY: 0x044, // RW
  QUEUE_NOTIFY: 0x050, // W: queue index
  INTERRUPT_STATUS: 0x060, // R
  INTERRUPT_ACK: 0x064, // W
  STATUS: 0x070, // RW
  QUEUE_DESC_LOW: 0x080, // W
  QUEUE_DESC_HIGH: 0x084, // W
  QUEUE_DRIVER_LOW: 0x090, // W: avail ring (VIRTIO_MMIO_QUEUE_AVAIL_LOW in Linux)
  QUEUE_DRIVER_HIGH: 0x094, // W
  QUEUE_DEVICE_LOW: 0x0a0, // W: used ring (VIRTIO_MMIO_QUEUE_USED_LOW in Linux)
  QUEUE_DEVICE_HIGH: 0x0a4, // W
  SHM_SEL: 0x0ac, // W
  SHM_LEN_LOW: 0x0b0, // R
  SHM_LEN_HIGH: 0x0b4, // R
  SHM_BASE_LOW: 0x0b8, // R
  SHM_BASE_HIGH: 0x0bc, // R
  QUEUE_RESET: 0x0c0, // RW, only with VIRTIO_F_RING_RESET
  CONFIG_GENERATION: 0x0fc, // R
  CONFIG: 0x100, // RW: device-specific configuration space
} as const;

/** "virt" in little-endian. */
export const MMIO_MAGIC_VALUE = 0x74726976;
/** virtio-mmio version 2 = non-legacy (virtio 1.x). */
export const MMIO_VERSION = 2;
/** Size of one device's MMIO window (what `virtio_mmio.device=4K@...` describes). */
export const MMIO_WINDOW_SIZE = 0x1000;

/** InterruptStatus / InterruptACK bits. */
export const MmioInterrupt = {
  /** The device used a buffer in at least one queue. */
  VRING: 1,
  /** The device configuration changed (also raised with DEVICE_NEEDS_RESET). */
  CONFIG: 2,
} as const;

/**
 * The kernel command-line entry that tells Linux's virtio_mmio driver about a device window
 * (drivers/virtio/virtio_mmio.c, `virtio_mmio.device=<size>@<baseaddr>:<irq>`).
 */
export function virtioMmioCmdlineEntry(base: number, irq: number): string {
  if (!Number.isSafeInteger(base) || base < 0 || base % MMIO_WINDOW_SIZE !== 0) {
    throw new RangeError(`virtio-mmio window base 0x${base.toString(16)} must be a 4 KiB-aligned address`);
  }
  if (!Number.isInteger(irq) || irq < 0) throw new RangeError(`virtio-mmio irq ${irq} must be a non-negative integer`);
  return `virtio_mmio.device=4K@0x${base.toString(16)}:${irq}`;
}
