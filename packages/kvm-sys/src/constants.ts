// KVM constants from <linux/kvm.h> and <asm/kvm.h> (checked against the compiled headers in
// test/layout.test.ts).

export const KVM_API_VERSION = 12;

/** kvm_run.exit_reason values. */
export const KvmExit = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7, SHUTDOWN: 8,
  FAIL_ENTRY: 9, INTR: 10, SET_TPR: 11, TPR_ACCESS: 12, NMI: 16, INTERNAL_ERROR: 17, WATCHDOG: 21, EPR: 23,
  SYSTEM_EVENT: 24, IOAPIC_EOI: 26, HYPERV: 27, X86_RDMSR: 29, X86_WRMSR: 30, DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32, X86_BUS_LOCK: 33, XEN: 34, NOTIFY: 37,
} as const;

const exitNames = new Map<number, string>(Object.entries(KvmExit).map(([name, value]) => [value, name]));
/** "IO", "MMIO", ... for an exit reason; "UNKNOWN_EXIT_<n>" for one this table does not know. */
export function exitReasonName(reason: number): string {
  return exitNames.get(reason) ?? `UNKNOWN_EXIT_${reason}`;
}

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export const KvmInternalError = { EMULATION: 1, SIMUL_EX: 2, DELIVERY_EV: 3, UNEXPECTED_EXIT_REASON: 4 } as const;
export const KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1;

export const KvmSystemEvent = { SHUTDOWN: 1, RESET: 2, CRASH: 3, WAKEUP: 4, SUSPEND: 5, SEV_TERM: 6 } as const;

export const KvmMpState = {
  RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4, STOPPED: 5, CHECK_STOP: 6,
  OPERATING: 7, LOAD: 8, AP_RESET_HOLD: 9, SUSPENDED: 10,
} as const;

/** KVM_CAP_* numbers for KVM_CHECK_EXTENSION / KVM_ENABLE_CAP. */
export const KvmCap = {
  IRQCHIP: 0, HLT: 1, USER_MEMORY: 3, SET_TSS_ADDR: 4, EXT_CPUID: 7, NR_VCPUS: 9, NR_MEMSLOTS: 10, MP_STATE: 14,
  COALESCED_MMIO: 15, SYNC_MMU: 16, IRQ_ROUTING: 25, IRQFD: 32, PIT2: 33, PIT_STATE2: 35, IOEVENTFD: 36,
  SET_IDENTITY_MAP_ADDR: 37, ADJUST_CLOCK: 39, INTERNAL_ERROR_DATA: 40, VCPU_EVENTS: 41, SET_GUEST_DEBUG: 23,
  DEBUGREGS: 50, XSAVE: 55, XCRS: 56, TSC_CONTROL: 60, GET_TSC_KHZ: 61, SIGNAL_MSI: 77, MAX_VCPUS: 66,
  TSC_DEADLINE_TIMER: 72, READONLY_MEM: 81, IRQFD_RESAMPLE: 82, KVMCLOCK_CTRL: 76, SPLIT_IRQCHIP: 121,
  IOEVENTFD_ANY_LENGTH: 122, X2APIC_API: 129, IMMEDIATE_EXIT: 136, X86_DISABLE_EXITS: 143,
  X86_USER_SPACE_MSR: 188, EXIT_ON_EMULATION_FAILURE: 204, COALESCED_PIO: 162,
} as const;

export const KVM_MEM_LOG_DIRTY_PAGES = 1;
export const KVM_MEM_READONLY = 2;

export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
export const KVM_IOEVENTFD_FLAG_PIO = 2;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 4;

export const KVM_IRQFD_FLAG_DEASSIGN = 1;
export const KVM_IRQFD_FLAG_RESAMPLE = 2;

export const KVM_PIT_SPEAKER_DUMMY = 1;

export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;
export const KVM_CPUID_FLAG_STATEFUL_FUNC = 2;
export const KVM_CPUID_FLAG_STATE_READ_NEXT = 4;

export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1;
export const KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2;
export const KVM_VCPUEVENT_VALID_SHADOW = 0x4;
export const KVM_VCPUEVENT_VALID_SMM = 0x8;
export const KVM_VCPUEVENT_VALID_PAYLOAD = 0x10;
export const KVM_VCPUEVENT_VALID_TRIPLE_FAULT = 0x20;

export const KVM_NR_INTERRUPTS = 256;
export const KVM_APIC_REG_SIZE = 0x400;

export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

export const KVM_GUESTDBG_ENABLE = 0x1;
export const KVM_GUESTDBG_SINGLESTEP = 0x2;
export const KVM_GUESTDBG_USE_SW_BP = 0x10000;
export const KVM_GUESTDBG_USE_HW_BP = 0x20000;

export const KVM_X86_DISABLE_EXITS_MWAIT = 1;
export const KVM_X86_DISABLE_EXITS_HLT = 2;
export const KVM_X86_DISABLE_EXITS_PAUSE = 4;
export const KVM_X86_DISABLE_EXITS_CSTATE = 8;

export const KVM_MSR_EXIT_REASON_INVAL = 1;
export const KVM_MSR_EXIT_REASON_UNKNOWN = 2;
export const KVM_MSR_EXIT_REASON_FILTER = 4;

/** x86: the coalesced MMIO ring is this many pages into a vCPU's mmap (what KVM_CAP_COALESCED_MMIO answers). */
export const KVM_COALESCED_MMIO_PAGE_OFFSET = 2;

/** Every constant above under its C macro name, for the header check. */
export function constantsByMacroName(): Record<string, number> {
  const out: Record<string, number> = { KVM_API_VERSION };
  const prefixed = (prefix: string, table: Record<string, number>) => {
    for (const [name, value] of Object.entries(table)) out[`${prefix}${name}`] = value;
  };
  prefixed('KVM_EXIT_', KvmExit);
  prefixed('KVM_INTERNAL_ERROR_', KvmInternalError);
  prefixed('KVM_SYSTEM_EVENT_', KvmSystemEvent);
  prefixed('KVM_MP_STATE_', KvmMpState);
  prefixed('KVM_CAP_', KvmCap);
  Object.assign(out, {
    KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
    KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY,
    KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_PIO, KVM_IOEVENTFD_FLAG_DEASSIGN,
    KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_PIT_SPEAKER_DUMMY,
    KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_CPUID_FLAG_STATEFUL_FUNC, KVM_CPUID_FLAG_STATE_READ_NEXT,
    KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_SIPI_VECTOR, KVM_VCPUEVENT_VALID_SHADOW,
    KVM_VCPUEVENT_VALID_SMM, KVM_VCPUEVENT_VALID_PAYLOAD, KVM_VCPUEVENT_VALID_TRIPLE_FAULT,
    KVM_NR_INTERRUPTS, KVM_APIC_REG_SIZE, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC,
    KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_SW_BP, KVM_GUESTDBG_USE_HW_BP,
    KVM_X86_DISABLE_EXITS_MWAIT, KVM_X86_DISABLE_EXITS_HLT, KVM_X86_DISABLE_EXITS_PAUSE,
    KVM_X86_DISABLE_EXITS_CSTATE, KVM_MSR_EXIT_REASON_INVAL, KVM_MSR_EXIT_REASON_UNKNOWN,
    KVM_MSR_EXIT_REASON_FILTER, KVM_COALESCED_MMIO_PAGE_OFFSET,
  });
  return out;
}
