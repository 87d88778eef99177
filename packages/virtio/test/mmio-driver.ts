// Test helpers for the MMIO transport: a recording device model and the register sequence Linux's
// virtio_mmio driver performs (drivers/virtio/virtio_mmio.c + virtio.c) to bring a device up.
import type { ActivationContext, VirtioDevice, VirtioDeviceHost } from '../src/device.js';
import { Status } from '../src/features.js';
import { MmioReg } from '../src/mmio-registers.js';
import type { MmioTransport } from '../src/mmio.js';
import type { TestLayout } from './driver.js';

export class RecordingDevice implements VirtioDevice {
  readonly deviceType: number;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize: number;
  readonly config: Uint8Array;
  host: VirtioDeviceHost | undefined;
  context: ActivationContext | undefined;
  activations = 0;
  resets = 0;
  processed: number[] = [];
  configWrites: Array<[number, number[]]> = [];
  acceptFeatures?: (features: bigint) => boolean;
  onProcess: ((index: number) => void) | undefined;

  constructor(options: { deviceType?: number; features?: bigint; queueMaxSizes?: number[]; config?: number[] } = {}) {
    this.deviceType = options.deviceType ?? 42;
    this.deviceFeatures = options.features ?? 0n;
    this.queueMaxSizes = options.queueMaxSizes ?? [16, 16];
    this.config = new Uint8Array(options.config ?? [1, 2, 3, 4, 5, 6, 7, 8]);
    this.configSize = this.config.length;
  }

  attach(host: VirtioDeviceHost): void {
    this.host = host;
  }
  readConfig(offset: number, dest: Uint8Array): void {
    dest.set(this.config.subarray(offset, offset + dest.length));
  }
  writeConfig(offset: number, data: Uint8Array): void {
    this.configWrites.push([offset, [...data]]);
  }
  activate(ctx: ActivationContext): void {
    this.activations++;
    this.context = ctx;
  }
  processQueue(index: number): void {
    this.processed.push(index);
    this.onProcess?.(index);
  }
  reset(): void {
    this.resets++;
    this.context = undefined;
  }
}

const w = (t: MmioTransport, reg: number, value: number) => t.write(reg, 4, value);

/** Read the 64 offered feature bits like Linux vm_get_features. */
export function readDeviceFeatures(t: MmioTransport): bigint {
  w(t, MmioReg.DEVICE_FEATURES_SEL, 1);
  const high = BigInt(t.read(MmioReg.DEVICE_FEATURES, 4));
  w(t, MmioReg.DEVICE_FEATURES_SEL, 0);
  return (high << 32n) | BigInt(t.read(MmioReg.DEVICE_FEATURES, 4));
}

export function writeDriverFeatures(t: MmioTransport, features: bigint): void {
  w(t, MmioReg.DRIVER_FEATURES_SEL, 1);
  w(t, MmioReg.DRIVER_FEATURES, Number(features >> 32n));
  w(t, MmioReg.DRIVER_FEATURES_SEL, 0);
  w(t, MmioReg.DRIVER_FEATURES, Number(features & 0xffff_ffffn));
}

/** Program one queue like Linux vm_setup_vq. */
export function setupQueue(t: MmioTransport, index: number, layout: TestLayout): void {
  w(t, MmioReg.QUEUE_SEL, index);
  w(t, MmioReg.QUEUE_NUM, layout.size);
  w(t, MmioReg.QUEUE_DESC_LOW, layout.descAddr);
  w(t, MmioReg.QUEUE_DESC_HIGH, 0);
  w(t, MmioReg.QUEUE_DRIVER_LOW, layout.availAddr);
  w(t, MmioReg.QUEUE_DRIVER_HIGH, 0);
  w(t, MmioReg.QUEUE_DEVICE_LOW, layout.usedAddr);
  w(t, MmioReg.QUEUE_DEVICE_HIGH, 0);
  w(t, MmioReg.QUEUE_READY, 1);
}

/** Reset, negotiate `accept` (default: everything offered), set up `queues`, DRIVER_OK. Returns the status. */
export function bringUp(t: MmioTransport, queues: TestLayout[], accept?: (offered: bigint) => bigint): number {
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
