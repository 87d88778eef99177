import type { VirtioLogger } from './log.js';
import type { GuestMemory } from './memory.js';
import type { SplitQueue } from './queue.js';

/** What the transport offers a device, from `attach` on (before and across activations). */
export interface VirtioDeviceHost {
  /**
   * The device changed its configuration space: bumps ConfigGeneration and, once the driver is running
   * (DRIVER_OK), raises the configuration-change interrupt.
   */
  configChanged(): void;
  /**
   * The device hit an error it cannot recover from without a reset: sets DEVICE_NEEDS_RESET, raises the
   * configuration-change interrupt if DRIVER_OK, and stops the queues until the driver resets the device.
   */
  needsReset(reason: string): void;
  readonly log: VirtioLogger;
}

/** Everything a device gets when the driver sets DRIVER_OK. Valid until the next `reset()`. */
export interface ActivationContext {
  /** Negotiated features (device-specific and transport bits). */
  readonly features: bigint;
  readonly memory: GuestMemory;
  /**
   * One entry per queue the device declared, by queue index: the live queue, or `undefined` where the
   * driver did not enable it (QueueReady 0).
   */
  readonly queues: ReadonlyArray<SplitQueue | undefined>;
  /** Raise the used-buffer interrupt unconditionally (normally use `queue.interruptIfNeeded()`). */
  interrupt(): void;
  readonly host: VirtioDeviceHost;
}

/**
 * A virtio device model, independent of the transport. Nothing here may throw on guest input; the
 * transport still catches anything thrown, logs it and sets DEVICE_NEEDS_RESET.
 *
 * Async work: a device may keep chains across turns of the event loop and complete them later with
 * `queue.addUsed(chain, n)` + `queue.interruptIfNeeded()`, in any order. After a reset those calls on
 * chains of the old activation return false and do nothing, so late completions are harmless.
 */
export interface VirtioDevice {
  /** Device type ID (virtio 1.2 §5, e.g. 2 block, 3 console). */
  readonly deviceType: number;
  /** A short name for log lines (e.g. `virtio-blk hype-disk-0`); VMMs fall back to the type's name. */
  readonly name?: string;
  /**
   * Device-specific feature bits offered. The transport adds VIRTIO_F_VERSION_1 and the ring features it
   * implements (INDIRECT_DESC, EVENT_IDX); transport bits (28..41) set here are ignored.
   */
  readonly deviceFeatures: bigint;
  /** QueueNumMax of each queue, in queue order; its length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Size of the device configuration space in bytes. */
  readonly configSize: number;
  /** Called once by the transport the device is plugged into. */
  attach(host: VirtioDeviceHost): void;
  /** Copy configuration bytes [offset, offset + dest.length) into dest (range already checked). */
  readConfig(offset: number, dest: Uint8Array): void;
  /** The driver wrote configuration bytes at offset (range already checked). Ignore read-only fields. */
  writeConfig(offset: number, data: Uint8Array): void;
  /** Optional check of the driver's feature choice at FEATURES_OK (already a subset of the offer). */
  acceptFeatures?(features: bigint): boolean;
  /** DRIVER_OK: start. If the device cannot run with this context it calls ctx.host.needsReset(). */
  activate(ctx: ActivationContext): void;
  /** The driver notified queue `index` (QueueNotify or its ioeventfd). Only called while active. */
  processQueue(index: number): void;
  /** Device reset: forget the activation (queues, features); keep host-side state (e.g. buffered input). */
  reset(): void;
  /**
   * Optional: release host resources (files, sockets, timers) when the VM is released. Called once,
   * after the vCPUs stopped and before guest memory goes away: finish or cancel in-flight work that
   * touches guest memory before the promise settles. The transport resets the device afterwards.
   */
  close?(): void | Promise<void>;
}
