export { createVm, type VmRuntimeOptions } from './create-vm.js';
export { Machine, type ExitCounts, type MachineParts, type MachineVcpu, type TimingEvent, type TimingEventName } from './machine.js';
export { probeKvmDevice } from './kvm-device.js';
export { Teardown } from './teardown.js';
export { CoalescedPio, type CoalescedPioOptions, type CoalescedPioRing, type CoalescedPioVm } from './coalesced-pio.js';
export { baseCmdline, joinCmdline } from './cmdline.js';
export { ByteBatcher, InputQueue } from './console-io.js';
export { VIRTIO_MMIO_BASE, VIRTIO_FIRST_IRQ, MAX_VIRTIO_DEVICES } from './virtio-slots.js';
export { VmInputError, INPUT_ERROR_CODE, type VmInputErrorKind } from './input-error.js';
