// The register sequences Linux's virtio_mmio driver performs (drivers/virtio/virtio_mmio.c and
// virtio.c), as plain functions over an MmioTransport: for tests that drive the transport step by step.
import { Status } from '../features.js';
import { MmioReg } from '../mmio-registers.js';
import type { MmioTransport } from '../mmio.js';
import type { QueueLayout } from '../queue.js';

const w = (t: MmioTransport, reg: number, value: number) => t.write(reg, 4, value);

/** Read the 64 offered feature bits like Linux `vm_get_features` (high word first). */
export function readDeviceFeatures(t: MmioTransport): bigint {
  w(t, MmioReg.DEVICE_FEATURES_SEL, 1);
  const high = BigInt(t.read(MmioReg.DEVICE_FEATURES, 4));
  w(t, MmioReg.DEVICE_FEATURES_SEL, 0);
  return (high << 32n) | BigInt(t.read(MmioReg.DEVICE_FEATURES, 4));
}

/** Write the driver's 64 feature bits like Linux `vm_finalize_features` (high word first). */
export function writeDriverFeatures(t: MmioTransport, features: bigint): void {
  w(t, MmioReg.DRIVER_FEATURES_SEL, 1);
  w(t, MmioReg.DRIVER_FEATURES, Number((features >> 32n) & 0xffff_ffffn));
  w(t, MmioReg.DRIVER_FEATURES_SEL, 0);
  w(t, MmioReg.DRIVER_FEATURES, Number(features & 0xffff_ffffn));
}

/** Program queue `index` with `layout` and set QueueReady, like Linux `vm_setup_vq`. */
export function setupQueue(t: MmioTransport, index: number, layout: QueueLayout): void {
  const high = (addr: number) => Math.floor(addr / 2 ** 32) >>> 0;
  w(t, MmioReg.QUEUE_SEL, index);
  w(t, MmioReg.QUEUE_NUM, layout.size);
  w(t, MmioReg.QUEUE_DESC_LOW, layout.descAddr >>> 0);
  w(t, MmioReg.QUEUE_DESC_HIGH, high(layout.descAddr));
  w(t, MmioReg.QUEUE_DRIVER_LOW, layout.availAddr >>> 0);
  w(t, MmioReg.QUEUE_DRIVER_HIGH, high(layout.availAddr));
  w(t, MmioReg.QUEUE_DEVICE_LOW, layout.usedAddr >>> 0);
  w(t, MmioReg.QUEUE_DEVICE_HIGH, high(layout.usedAddr));
  w(t, MmioReg.QUEUE_READY, 1);
}

/**
 * The whole Linux bring-up: reset, ACKNOWLEDGE, DRIVER, negotiate (`accept` maps the offer to what the
 * driver acknowledges; default: everything offered), FEATURES_OK (checked), queue `i` set up with
 * `queues[i]`, DRIVER_OK. Returns the Status register at the end (no FEATURES_OK bit if the device
 * refused the features; DEVICE_NEEDS_RESET if it refused to start). Never throws.
 */
export function bringUp(t: MmioTransport, queues: readonly QueueLayout[], accept?: (offered: bigint) => bigint): number {
  w(t, MmioReg.STATUS, 0);
  w(t, MmioReg.STATUS, Status.ACKNOWLEDGE);
  w(t, MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
  const offered = readDeviceFeatures(t);
  writeDriverFeatures(t, accept ? accept(offered) : offered);
  w(t, MmioReg.STATUS, t.read(MmioReg.STATUS, 4) | Status.FEATURES_OK);
  if ((t.read(MmioReg.STATUS, 4) & Status.FEATURES_OK) === 0) return t.read(MmioReg.STATUS, 4);
  queues.forEach((layout, index) => setupQueue(t, index, layout));
  w(t, MmioReg.STATUS, t.read(MmioReg.STATUS, 4) | Status.DRIVER_OK);
  return t.read(MmioReg.STATUS, 4);
}
