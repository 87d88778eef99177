export { createVm, Machine, probeKvmDevice } from './machine.js';
export type { TimingEvent, TimingEventName, VmRuntimeOptions } from './machine.js';
export { baseCmdline, joinCmdline } from './cmdline.js';
export { ByteBatcher, InputQueue } from './console-io.js';
export { VIRTIO_MMIO_BASE, VIRTIO_FIRST_IRQ, MAX_VIRTIO_DEVICES } from './virtio-slots.js';
export { VmInputError, INPUT_ERROR_CODE } from './input-error.js';
