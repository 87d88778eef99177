// A device model for transport tests: records what the transport calls and lets a test hook
// processQueue. (Device tests use the driver-side harness in src/testing/ against real devices.)
import type { ActivationContext, VirtioDevice, VirtioDeviceHost } from '../src/device.js';

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
