export { Kvm } from './kvm.js';
export { Vm } from './vm.js';
export type {
  CoalescedZone, CoalescedZoneOptions, IoEventFd, IoEventFdOptions, IrqFd, IrqFdOptions, MemoryRegion, MemoryRegionOptions,
} from './vm.js';
export { CoalescedRing } from './coalesced-ring.js';
export type { CoalescedWriteVisitor } from './coalesced-ring.js';
export { Vcpu } from './vcpu.js';
export type { ExitAction, ExitHandler, StartOptions, VcpuStopReason } from './vcpu.js';
export { DEFAULT_EXIT_POLL_BUDGET_NS, resolveExitPoll } from './exit-poll.js';
export type { ExitPoll, ExitPollOptions } from './exit-poll.js';
export { DEFAULT_VCPU_SPIN_NS, resolveVcpuSpin } from './vcpu-spin.js';
export { PioReadMirror } from './pio-read-mirror.js';
export { KvmRun } from './kvm-run.js';
export type { InternalErrorExit, IoExit, MmioExit, SystemEventExit } from './kvm-run.js';
export { EventFd } from './eventfd.js';
export type { EventFdWatch } from './eventfd.js';
export { GuestMemoryMap } from '@hype/guest-memory';
export type { GuestMemory, RamRange } from '@hype/guest-memory';
export { KvmError } from './errors.js';
export type { CpuidEntry, DescriptorTable, Fpu, MsrEntry, Regs, Segment, Sregs, VcpuEvents } from './structs.js';
export {
  KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KvmCap, KvmExit, KvmInternalError, KvmMpState, KvmSystemEvent, exitReasonName,
} from '@hype/kvm-sys';
