// KVM ioctl request numbers, built like <asm-generic/ioctl.h> does from the struct sizes in layout.ts.
// test/layout.test.ts checks every one against the KVM_* macros compiled into the addon.
import * as L from './layout.js';

const KVMIO = 0xae;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  // dir:2 | size:14 | type:8 | nr:8, as an unsigned 32-bit number
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number) => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

export const ioctls = {
  // system
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_GET_MSR_INDEX_LIST: iowr(0x02, L.kvm_msr_list.size),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, L.kvm_cpuid2.size),
  KVM_GET_MSR_FEATURE_INDEX_LIST: iowr(0x0a, L.kvm_msr_list.size),
  // VM
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, L.kvm_userspace_memory_region.size),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  KVM_CREATE_IRQCHIP: io(0x60),
  KVM_IRQ_LINE: iow(0x61, L.kvm_irq_level.size),
  KVM_GET_IRQCHIP: iowr(0x62, L.kvm_irqchip.size),
  KVM_SET_IRQCHIP: ior(0x63, L.kvm_irqchip.size),
  KVM_IRQ_LINE_STATUS: iowr(0x67, L.kvm_irq_level.size),
  KVM_SET_GSI_ROUTING: iow(0x6a, L.kvm_irq_routing.size),
  KVM_IRQFD: iow(0x76, L.kvm_irqfd.size),
  KVM_CREATE_PIT2: iow(0x77, L.kvm_pit_config.size),
  KVM_IOEVENTFD: iow(0x79, L.kvm_ioeventfd.size),
  KVM_REGISTER_COALESCED_MMIO: iow(0x67, L.kvm_coalesced_mmio_zone.size),
  KVM_UNREGISTER_COALESCED_MMIO: iow(0x68, L.kvm_coalesced_mmio_zone.size),
  KVM_SET_CLOCK: iow(0x7b, L.kvm_clock_data.size),
  KVM_GET_CLOCK: ior(0x7c, L.kvm_clock_data.size),
  KVM_GET_PIT2: ior(0x9f, L.kvm_pit_state2.size),
  KVM_SET_PIT2: iow(0xa0, L.kvm_pit_state2.size),
  KVM_ENABLE_CAP: iow(0xa3, L.kvm_enable_cap.size),
  KVM_SIGNAL_MSI: iow(0xa5, L.kvm_msi.size),
  // vCPU
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, L.kvm_regs.size),
  KVM_SET_REGS: iow(0x82, L.kvm_regs.size),
  KVM_GET_SREGS: ior(0x83, L.kvm_sregs.size),
  KVM_SET_SREGS: iow(0x84, L.kvm_sregs.size),
  KVM_TRANSLATE: iowr(0x85, L.kvm_translation.size),
  KVM_INTERRUPT: iow(0x86, L.kvm_interrupt.size),
  KVM_GET_MSRS: iowr(0x88, L.kvm_msrs.size),
  KVM_SET_MSRS: iow(0x89, L.kvm_msrs.size),
  KVM_GET_FPU: ior(0x8c, L.kvm_fpu.size),
  KVM_SET_FPU: iow(0x8d, L.kvm_fpu.size),
  KVM_GET_LAPIC: ior(0x8e, L.kvm_lapic_state.size),
  KVM_SET_LAPIC: iow(0x8f, L.kvm_lapic_state.size),
  KVM_SET_CPUID2: iow(0x90, L.kvm_cpuid2.size),
  KVM_GET_CPUID2: iowr(0x91, L.kvm_cpuid2.size),
  KVM_GET_MP_STATE: ior(0x98, L.kvm_mp_state.size),
  KVM_SET_MP_STATE: iow(0x99, L.kvm_mp_state.size),
  KVM_NMI: io(0x9a),
  KVM_SET_GUEST_DEBUG: iow(0x9b, L.kvm_guest_debug.size),
  KVM_GET_VCPU_EVENTS: ior(0x9f, L.kvm_vcpu_events.size),
  KVM_SET_VCPU_EVENTS: iow(0xa0, L.kvm_vcpu_events.size),
  KVM_GET_DEBUGREGS: ior(0xa1, L.kvm_debugregs.size),
  KVM_SET_DEBUGREGS: iow(0xa2, L.kvm_debugregs.size),
  KVM_SET_TSC_KHZ: io(0xa2),
  KVM_GET_TSC_KHZ: io(0xa3),
  KVM_GET_XSAVE: ior(0xa4, L.kvm_xsave.size),
  KVM_SET_XSAVE: iow(0xa5, L.kvm_xsave.size),
  KVM_GET_XCRS: ior(0xa6, L.kvm_xcrs.size),
  KVM_SET_XCRS: iow(0xa7, L.kvm_xcrs.size),
  KVM_KVMCLOCK_CTRL: io(0xad),
} as const;

export type IoctlName = keyof typeof ioctls;

const namesByNumber = new Map<number, IoctlName>(
  (Object.entries(ioctls) as [IoctlName, number][]).map(([name, number]) => [number, name]),
);

/** The KVM_* name of an ioctl request number (for error messages), or its hex value. */
export function ioctlName(request: number): string {
  return namesByNumber.get(request) ?? `0x${request.toString(16)}`;
}
