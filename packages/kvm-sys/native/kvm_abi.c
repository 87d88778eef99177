// Every number hype takes from the KVM headers, computed by the C compiler.
//
// This file must stay C: <linux/kvm.h> declares flexible arrays with __DECLARE_FLEX_ARRAY, whose empty
// struct member has size 0 in C but 1 in C++, so a C++ compile gets sizeof(struct kvm_msrs) == 16 instead
// of 8 and wrong request numbers for KVM_GET_MSRS, KVM_SET_CPUID2, KVM_GET_SUPPORTED_CPUID, ... .
#include "kvm_abi.h"

#include <linux/kvm.h>
#include <stddef.h>

#define SIZE(T) {"size", sizeof(struct T)}
#define F(T, member) {#member, offsetof(struct T, member)}
#define AT(T, key, member) {key, offsetof(struct T, member)}
#define LAYOUT(T) {#T, T##_fields, sizeof T##_fields / sizeof T##_fields[0]}
#define N(name) {#name, (unsigned long long)(name)}
#define COUNT(array) (sizeof array / sizeof array[0])

static const struct hype_named_value kvm_regs_fields[] = {
    SIZE(kvm_regs),
    F(kvm_regs, rax),
    F(kvm_regs, rbx),
    F(kvm_regs, rcx),
    F(kvm_regs, rdx),
    F(kvm_regs, rsi),
    F(kvm_regs, rdi),
    F(kvm_regs, rsp),
    F(kvm_regs, rbp),
    F(kvm_regs, r8),
    F(kvm_regs, r9),
    F(kvm_regs, r10),
    F(kvm_regs, r11),
    F(kvm_regs, r12),
    F(kvm_regs, r13),
    F(kvm_regs, r14),
    F(kvm_regs, r15),
    F(kvm_regs, rip),
    F(kvm_regs, rflags),
};
static const struct hype_named_value kvm_segment_fields[] = {
    SIZE(kvm_segment),
    F(kvm_segment, base),
    F(kvm_segment, limit),
    F(kvm_segment, selector),
    F(kvm_segment, type),
    F(kvm_segment, present),
    F(kvm_segment, dpl),
    F(kvm_segment, db),
    F(kvm_segment, s),
    F(kvm_segment, l),
    F(kvm_segment, g),
    F(kvm_segment, avl),
    F(kvm_segment, unusable),
    F(kvm_segment, padding),
};
static const struct hype_named_value kvm_dtable_fields[] = {
    SIZE(kvm_dtable),
    F(kvm_dtable, base),
    F(kvm_dtable, limit),
    F(kvm_dtable, padding),
};
static const struct hype_named_value kvm_sregs_fields[] = {
    SIZE(kvm_sregs),
    F(kvm_sregs, cs),
    F(kvm_sregs, ds),
    F(kvm_sregs, es),
    F(kvm_sregs, fs),
    F(kvm_sregs, gs),
    F(kvm_sregs, ss),
    F(kvm_sregs, tr),
    F(kvm_sregs, ldt),
    F(kvm_sregs, gdt),
    F(kvm_sregs, idt),
    F(kvm_sregs, cr0),
    F(kvm_sregs, cr2),
    F(kvm_sregs, cr3),
    F(kvm_sregs, cr4),
    F(kvm_sregs, cr8),
    F(kvm_sregs, efer),
    F(kvm_sregs, apic_base),
    F(kvm_sregs, interrupt_bitmap),
};
static const struct hype_named_value kvm_fpu_fields[] = {
    SIZE(kvm_fpu),
    F(kvm_fpu, fpr),
    F(kvm_fpu, fcw),
    F(kvm_fpu, fsw),
    F(kvm_fpu, ftwx),
    F(kvm_fpu, pad1),
    F(kvm_fpu, last_opcode),
    F(kvm_fpu, last_ip),
    F(kvm_fpu, last_dp),
    F(kvm_fpu, xmm),
    F(kvm_fpu, mxcsr),
    F(kvm_fpu, pad2),
};
static const struct hype_named_value kvm_msr_entry_fields[] = {
    SIZE(kvm_msr_entry),
    F(kvm_msr_entry, index),
    F(kvm_msr_entry, reserved),
    F(kvm_msr_entry, data),
};
static const struct hype_named_value kvm_msrs_fields[] = {
    SIZE(kvm_msrs),
    F(kvm_msrs, nmsrs),
    F(kvm_msrs, pad),
    F(kvm_msrs, entries),
};
static const struct hype_named_value kvm_msr_list_fields[] = {
    SIZE(kvm_msr_list),
    F(kvm_msr_list, nmsrs),
    F(kvm_msr_list, indices),
};
static const struct hype_named_value kvm_cpuid_entry2_fields[] = {
    SIZE(kvm_cpuid_entry2),
    F(kvm_cpuid_entry2, function),
    F(kvm_cpuid_entry2, index),
    F(kvm_cpuid_entry2, flags),
    F(kvm_cpuid_entry2, eax),
    F(kvm_cpuid_entry2, ebx),
    F(kvm_cpuid_entry2, ecx),
    F(kvm_cpuid_entry2, edx),
    F(kvm_cpuid_entry2, padding),
};
static const struct hype_named_value kvm_cpuid2_fields[] = {
    SIZE(kvm_cpuid2),
    F(kvm_cpuid2, nent),
    F(kvm_cpuid2, padding),
    F(kvm_cpuid2, entries),
};
static const struct hype_named_value kvm_lapic_state_fields[] = {
    SIZE(kvm_lapic_state),
    F(kvm_lapic_state, regs),
};
static const struct hype_named_value kvm_vcpu_events_fields[] = {
    SIZE(kvm_vcpu_events),
    AT(kvm_vcpu_events, "exception_injected", exception.injected),
    AT(kvm_vcpu_events, "exception_nr", exception.nr),
    AT(kvm_vcpu_events, "exception_has_error_code", exception.has_error_code),
    AT(kvm_vcpu_events, "exception_pending", exception.pending),
    AT(kvm_vcpu_events, "exception_error_code", exception.error_code),
    AT(kvm_vcpu_events, "interrupt_injected", interrupt.injected),
    AT(kvm_vcpu_events, "interrupt_nr", interrupt.nr),
    AT(kvm_vcpu_events, "interrupt_soft", interrupt.soft),
    AT(kvm_vcpu_events, "interrupt_shadow", interrupt.shadow),
    AT(kvm_vcpu_events, "nmi_injected", nmi.injected),
    AT(kvm_vcpu_events, "nmi_pending", nmi.pending),
    AT(kvm_vcpu_events, "nmi_masked", nmi.masked),
    AT(kvm_vcpu_events, "nmi_pad", nmi.pad),
    F(kvm_vcpu_events, sipi_vector),
    F(kvm_vcpu_events, flags),
    AT(kvm_vcpu_events, "smi_smm", smi.smm),
    AT(kvm_vcpu_events, "smi_pending", smi.pending),
    AT(kvm_vcpu_events, "smi_smm_inside_nmi", smi.smm_inside_nmi),
    AT(kvm_vcpu_events, "smi_latched_init", smi.latched_init),
    AT(kvm_vcpu_events, "triple_fault_pending", triple_fault.pending),
    F(kvm_vcpu_events, reserved),
    F(kvm_vcpu_events, exception_has_payload),
    F(kvm_vcpu_events, exception_payload),
};
static const struct hype_named_value kvm_mp_state_fields[] = {
    SIZE(kvm_mp_state),
    F(kvm_mp_state, mp_state),
};
static const struct hype_named_value kvm_userspace_memory_region_fields[] = {
    SIZE(kvm_userspace_memory_region),
    F(kvm_userspace_memory_region, slot),
    F(kvm_userspace_memory_region, flags),
    F(kvm_userspace_memory_region, guest_phys_addr),
    F(kvm_userspace_memory_region, memory_size),
    F(kvm_userspace_memory_region, userspace_addr),
};
static const struct hype_named_value kvm_ioeventfd_fields[] = {
    SIZE(kvm_ioeventfd),
    F(kvm_ioeventfd, datamatch),
    F(kvm_ioeventfd, addr),
    F(kvm_ioeventfd, len),
    F(kvm_ioeventfd, fd),
    F(kvm_ioeventfd, flags),
    F(kvm_ioeventfd, pad),
};
static const struct hype_named_value kvm_irqfd_fields[] = {
    SIZE(kvm_irqfd),
    F(kvm_irqfd, fd),
    F(kvm_irqfd, gsi),
    F(kvm_irqfd, flags),
    F(kvm_irqfd, resamplefd),
    F(kvm_irqfd, pad),
};
static const struct hype_named_value kvm_irq_level_fields[] = {
    SIZE(kvm_irq_level),
    F(kvm_irq_level, irq),
    F(kvm_irq_level, status),
    F(kvm_irq_level, level),
};
static const struct hype_named_value kvm_pit_config_fields[] = {
    SIZE(kvm_pit_config),
    F(kvm_pit_config, flags),
    F(kvm_pit_config, pad),
};
static const struct hype_named_value kvm_enable_cap_fields[] = {
    SIZE(kvm_enable_cap),
    F(kvm_enable_cap, cap),
    F(kvm_enable_cap, flags),
    F(kvm_enable_cap, args),
    F(kvm_enable_cap, pad),
};
static const struct hype_named_value kvm_run_fields[] = {
    SIZE(kvm_run),
    F(kvm_run, request_interrupt_window),
    F(kvm_run, immediate_exit),
    F(kvm_run, padding1),
    F(kvm_run, exit_reason),
    F(kvm_run, ready_for_interrupt_injection),
    F(kvm_run, if_flag),
    F(kvm_run, flags),
    F(kvm_run, cr8),
    F(kvm_run, apic_base),
    AT(kvm_run, "hw_hardware_exit_reason", hw.hardware_exit_reason),
    AT(kvm_run, "fail_entry_hardware_entry_failure_reason", fail_entry.hardware_entry_failure_reason),
    AT(kvm_run, "fail_entry_cpu", fail_entry.cpu),
    AT(kvm_run, "ex_exception", ex.exception),
    AT(kvm_run, "ex_error_code", ex.error_code),
    AT(kvm_run, "io_direction", io.direction),
    AT(kvm_run, "io_size", io.size),
    AT(kvm_run, "io_port", io.port),
    AT(kvm_run, "io_count", io.count),
    AT(kvm_run, "io_data_offset", io.data_offset),
    AT(kvm_run, "debug_arch_exception", debug.arch.exception),
    AT(kvm_run, "debug_arch_pc", debug.arch.pc),
    AT(kvm_run, "debug_arch_dr6", debug.arch.dr6),
    AT(kvm_run, "debug_arch_dr7", debug.arch.dr7),
    AT(kvm_run, "mmio_phys_addr", mmio.phys_addr),
    AT(kvm_run, "mmio_data", mmio.data),
    AT(kvm_run, "mmio_len", mmio.len),
    AT(kvm_run, "mmio_is_write", mmio.is_write),
    AT(kvm_run, "internal_suberror", internal.suberror),
    AT(kvm_run, "internal_ndata", internal.ndata),
    AT(kvm_run, "internal_data", internal.data),
    AT(kvm_run, "emulation_failure_flags", emulation_failure.flags),
    AT(kvm_run, "emulation_failure_insn_size", emulation_failure.insn_size),
    AT(kvm_run, "emulation_failure_insn_bytes", emulation_failure.insn_bytes),
    AT(kvm_run, "system_event_type", system_event.type),
    AT(kvm_run, "system_event_ndata", system_event.ndata),
    AT(kvm_run, "system_event_data", system_event.data),
    AT(kvm_run, "msr_error", msr.error),
    AT(kvm_run, "msr_reason", msr.reason),
    AT(kvm_run, "msr_index", msr.index),
    AT(kvm_run, "msr_data", msr.data),
    F(kvm_run, kvm_valid_regs),
    F(kvm_run, kvm_dirty_regs),
    F(kvm_run, s),
};
static const struct hype_named_value kvm_irqchip_fields[] = {
    SIZE(kvm_irqchip),
};
static const struct hype_named_value kvm_pit_state2_fields[] = {
    SIZE(kvm_pit_state2),
};
static const struct hype_named_value kvm_clock_data_fields[] = {
    SIZE(kvm_clock_data),
};
static const struct hype_named_value kvm_msi_fields[] = {
    SIZE(kvm_msi),
};
static const struct hype_named_value kvm_irq_routing_fields[] = {
    SIZE(kvm_irq_routing),
};
static const struct hype_named_value kvm_irq_routing_entry_fields[] = {
    SIZE(kvm_irq_routing_entry),
};
static const struct hype_named_value kvm_translation_fields[] = {
    SIZE(kvm_translation),
};
static const struct hype_named_value kvm_interrupt_fields[] = {
    SIZE(kvm_interrupt),
};
static const struct hype_named_value kvm_guest_debug_fields[] = {
    SIZE(kvm_guest_debug),
};
static const struct hype_named_value kvm_coalesced_mmio_zone_fields[] = {
    SIZE(kvm_coalesced_mmio_zone),
    F(kvm_coalesced_mmio_zone, addr),
    AT(kvm_coalesced_mmio_zone, "zone_size", size),  // "size" is the struct's size
    F(kvm_coalesced_mmio_zone, pio),
};
static const struct hype_named_value kvm_coalesced_mmio_fields[] = {
    SIZE(kvm_coalesced_mmio),
    F(kvm_coalesced_mmio, phys_addr),
    F(kvm_coalesced_mmio, len),
    F(kvm_coalesced_mmio, pio),
    F(kvm_coalesced_mmio, data),
};
static const struct hype_named_value kvm_coalesced_mmio_ring_fields[] = {
    SIZE(kvm_coalesced_mmio_ring),
    F(kvm_coalesced_mmio_ring, first),
    F(kvm_coalesced_mmio_ring, last),
    F(kvm_coalesced_mmio_ring, coalesced_mmio),
};
static const struct hype_named_value kvm_debugregs_fields[] = {
    SIZE(kvm_debugregs),
};
static const struct hype_named_value kvm_xsave_fields[] = {
    SIZE(kvm_xsave),
};
static const struct hype_named_value kvm_xcrs_fields[] = {
    SIZE(kvm_xcrs),
};

const struct hype_struct_layout hype_layouts[] = {
    LAYOUT(kvm_regs),
    LAYOUT(kvm_segment),
    LAYOUT(kvm_dtable),
    LAYOUT(kvm_sregs),
    LAYOUT(kvm_fpu),
    LAYOUT(kvm_msr_entry),
    LAYOUT(kvm_msrs),
    LAYOUT(kvm_msr_list),
    LAYOUT(kvm_cpuid_entry2),
    LAYOUT(kvm_cpuid2),
    LAYOUT(kvm_lapic_state),
    LAYOUT(kvm_vcpu_events),
    LAYOUT(kvm_mp_state),
    LAYOUT(kvm_userspace_memory_region),
    LAYOUT(kvm_ioeventfd),
    LAYOUT(kvm_irqfd),
    LAYOUT(kvm_irq_level),
    LAYOUT(kvm_pit_config),
    LAYOUT(kvm_enable_cap),
    LAYOUT(kvm_run),
    LAYOUT(kvm_irqchip),
    LAYOUT(kvm_pit_state2),
    LAYOUT(kvm_clock_data),
    LAYOUT(kvm_msi),
    LAYOUT(kvm_irq_routing),
    LAYOUT(kvm_irq_routing_entry),
    LAYOUT(kvm_translation),
    LAYOUT(kvm_interrupt),
    LAYOUT(kvm_guest_debug),
    LAYOUT(kvm_debugregs),
    LAYOUT(kvm_xsave),
    LAYOUT(kvm_xcrs),
    LAYOUT(kvm_coalesced_mmio_zone),
    LAYOUT(kvm_coalesced_mmio),
    LAYOUT(kvm_coalesced_mmio_ring),
};
const size_t hype_layout_count = COUNT(hype_layouts);

const struct hype_named_value hype_ioctls[] = {
    N(KVM_GET_API_VERSION),
    N(KVM_CREATE_VM),
    N(KVM_GET_MSR_INDEX_LIST),
    N(KVM_CHECK_EXTENSION),
    N(KVM_GET_VCPU_MMAP_SIZE),
    N(KVM_GET_SUPPORTED_CPUID),
    N(KVM_GET_MSR_FEATURE_INDEX_LIST),
    N(KVM_CREATE_VCPU),
    N(KVM_SET_USER_MEMORY_REGION),
    N(KVM_SET_TSS_ADDR),
    N(KVM_SET_IDENTITY_MAP_ADDR),
    N(KVM_CREATE_IRQCHIP),
    N(KVM_IRQ_LINE),
    N(KVM_IRQ_LINE_STATUS),
    N(KVM_GET_IRQCHIP),
    N(KVM_SET_IRQCHIP),
    N(KVM_SET_GSI_ROUTING),
    N(KVM_IRQFD),
    N(KVM_CREATE_PIT2),
    N(KVM_GET_PIT2),
    N(KVM_SET_PIT2),
    N(KVM_IOEVENTFD),
    N(KVM_REGISTER_COALESCED_MMIO),
    N(KVM_UNREGISTER_COALESCED_MMIO),
    N(KVM_SET_CLOCK),
    N(KVM_GET_CLOCK),
    N(KVM_SIGNAL_MSI),
    N(KVM_ENABLE_CAP),
    N(KVM_RUN),
    N(KVM_GET_REGS),
    N(KVM_SET_REGS),
    N(KVM_GET_SREGS),
    N(KVM_SET_SREGS),
    N(KVM_TRANSLATE),
    N(KVM_INTERRUPT),
    N(KVM_NMI),
    N(KVM_GET_MSRS),
    N(KVM_SET_MSRS),
    N(KVM_GET_FPU),
    N(KVM_SET_FPU),
    N(KVM_GET_LAPIC),
    N(KVM_SET_LAPIC),
    N(KVM_SET_CPUID2),
    N(KVM_GET_CPUID2),
    N(KVM_GET_MP_STATE),
    N(KVM_SET_MP_STATE),
    N(KVM_SET_GUEST_DEBUG),
    N(KVM_GET_VCPU_EVENTS),
    N(KVM_SET_VCPU_EVENTS),
    N(KVM_GET_DEBUGREGS),
    N(KVM_SET_DEBUGREGS),
    N(KVM_GET_XSAVE),
    N(KVM_SET_XSAVE),
    N(KVM_GET_XCRS),
    N(KVM_SET_XCRS),
    N(KVM_SET_TSC_KHZ),
    N(KVM_GET_TSC_KHZ),
    N(KVM_KVMCLOCK_CTRL),
};
const size_t hype_ioctl_count = COUNT(hype_ioctls);

const struct hype_named_value hype_constants[] = {
    N(KVM_API_VERSION),
    N(KVM_EXIT_UNKNOWN),
    N(KVM_EXIT_EXCEPTION),
    N(KVM_EXIT_IO),
    N(KVM_EXIT_HYPERCALL),
    N(KVM_EXIT_DEBUG),
    N(KVM_EXIT_HLT),
    N(KVM_EXIT_MMIO),
    N(KVM_EXIT_IRQ_WINDOW_OPEN),
    N(KVM_EXIT_SHUTDOWN),
    N(KVM_EXIT_FAIL_ENTRY),
    N(KVM_EXIT_INTR),
    N(KVM_EXIT_SET_TPR),
    N(KVM_EXIT_TPR_ACCESS),
    N(KVM_EXIT_NMI),
    N(KVM_EXIT_INTERNAL_ERROR),
    N(KVM_EXIT_WATCHDOG),
    N(KVM_EXIT_EPR),
    N(KVM_EXIT_SYSTEM_EVENT),
    N(KVM_EXIT_IOAPIC_EOI),
    N(KVM_EXIT_HYPERV),
    N(KVM_EXIT_X86_RDMSR),
    N(KVM_EXIT_X86_WRMSR),
    N(KVM_EXIT_DIRTY_RING_FULL),
    N(KVM_EXIT_AP_RESET_HOLD),
    N(KVM_EXIT_X86_BUS_LOCK),
    N(KVM_EXIT_XEN),
    N(KVM_EXIT_NOTIFY),
    N(KVM_EXIT_IO_IN),
    N(KVM_EXIT_IO_OUT),
    N(KVM_INTERNAL_ERROR_EMULATION),
    N(KVM_INTERNAL_ERROR_SIMUL_EX),
    N(KVM_INTERNAL_ERROR_DELIVERY_EV),
    N(KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON),
    N(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES),
    N(KVM_SYSTEM_EVENT_SHUTDOWN),
    N(KVM_SYSTEM_EVENT_RESET),
    N(KVM_SYSTEM_EVENT_CRASH),
    N(KVM_SYSTEM_EVENT_WAKEUP),
    N(KVM_SYSTEM_EVENT_SUSPEND),
    N(KVM_SYSTEM_EVENT_SEV_TERM),
    N(KVM_MP_STATE_RUNNABLE),
    N(KVM_MP_STATE_UNINITIALIZED),
    N(KVM_MP_STATE_INIT_RECEIVED),
    N(KVM_MP_STATE_HALTED),
    N(KVM_MP_STATE_SIPI_RECEIVED),
    N(KVM_MP_STATE_STOPPED),
    N(KVM_MP_STATE_CHECK_STOP),
    N(KVM_MP_STATE_OPERATING),
    N(KVM_MP_STATE_LOAD),
    N(KVM_MP_STATE_AP_RESET_HOLD),
    N(KVM_MP_STATE_SUSPENDED),
    N(KVM_CAP_IRQCHIP),
    N(KVM_CAP_HLT),
    N(KVM_CAP_USER_MEMORY),
    N(KVM_CAP_SET_TSS_ADDR),
    N(KVM_CAP_EXT_CPUID),
    N(KVM_CAP_NR_VCPUS),
    N(KVM_CAP_NR_MEMSLOTS),
    N(KVM_CAP_MP_STATE),
    N(KVM_CAP_COALESCED_MMIO),
    N(KVM_CAP_SYNC_MMU),
    N(KVM_CAP_IRQ_ROUTING),
    N(KVM_CAP_IRQFD),
    N(KVM_CAP_PIT2),
    N(KVM_CAP_PIT_STATE2),
    N(KVM_CAP_IOEVENTFD),
    N(KVM_CAP_SET_IDENTITY_MAP_ADDR),
    N(KVM_CAP_ADJUST_CLOCK),
    N(KVM_CAP_INTERNAL_ERROR_DATA),
    N(KVM_CAP_VCPU_EVENTS),
    N(KVM_CAP_MAX_VCPUS),
    N(KVM_CAP_TSC_DEADLINE_TIMER),
    N(KVM_CAP_READONLY_MEM),
    N(KVM_CAP_SPLIT_IRQCHIP),
    N(KVM_CAP_IOEVENTFD_ANY_LENGTH),
    N(KVM_CAP_X2APIC_API),
    N(KVM_CAP_IMMEDIATE_EXIT),
    N(KVM_CAP_X86_DISABLE_EXITS),
    N(KVM_CAP_X86_USER_SPACE_MSR),
    N(KVM_CAP_EXIT_ON_EMULATION_FAILURE),
    N(KVM_CAP_SET_GUEST_DEBUG),
    N(KVM_CAP_DEBUGREGS),
    N(KVM_CAP_XSAVE),
    N(KVM_CAP_XCRS),
    N(KVM_CAP_TSC_CONTROL),
    N(KVM_CAP_GET_TSC_KHZ),
    N(KVM_CAP_KVMCLOCK_CTRL),
    N(KVM_CAP_SIGNAL_MSI),
    N(KVM_CAP_IRQFD_RESAMPLE),
    N(KVM_CAP_COALESCED_PIO),
    N(KVM_COALESCED_MMIO_PAGE_OFFSET),
    N(KVM_MEM_LOG_DIRTY_PAGES),
    N(KVM_MEM_READONLY),
    N(KVM_IOEVENTFD_FLAG_DATAMATCH),
    N(KVM_IOEVENTFD_FLAG_PIO),
    N(KVM_IOEVENTFD_FLAG_DEASSIGN),
    N(KVM_IRQFD_FLAG_DEASSIGN),
    N(KVM_IRQFD_FLAG_RESAMPLE),
    N(KVM_PIT_SPEAKER_DUMMY),
    N(KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    N(KVM_CPUID_FLAG_STATEFUL_FUNC),
    N(KVM_CPUID_FLAG_STATE_READ_NEXT),
    N(KVM_VCPUEVENT_VALID_NMI_PENDING),
    N(KVM_VCPUEVENT_VALID_SIPI_VECTOR),
    N(KVM_VCPUEVENT_VALID_SHADOW),
    N(KVM_VCPUEVENT_VALID_SMM),
    N(KVM_VCPUEVENT_VALID_PAYLOAD),
    N(KVM_VCPUEVENT_VALID_TRIPLE_FAULT),
    N(KVM_NR_INTERRUPTS),
    N(KVM_APIC_REG_SIZE),
    N(KVM_IRQCHIP_PIC_MASTER),
    N(KVM_IRQCHIP_PIC_SLAVE),
    N(KVM_IRQCHIP_IOAPIC),
    N(KVM_GUESTDBG_ENABLE),
    N(KVM_GUESTDBG_SINGLESTEP),
    N(KVM_GUESTDBG_USE_SW_BP),
    N(KVM_GUESTDBG_USE_HW_BP),
    N(KVM_X86_DISABLE_EXITS_MWAIT),
    N(KVM_X86_DISABLE_EXITS_HLT),
    N(KVM_X86_DISABLE_EXITS_PAUSE),
    N(KVM_X86_DISABLE_EXITS_CSTATE),
    N(KVM_MSR_EXIT_REASON_INVAL),
    N(KVM_MSR_EXIT_REASON_UNKNOWN),
    N(KVM_MSR_EXIT_REASON_FILTER),
};
const size_t hype_constant_count = COUNT(hype_constants);

#define NONE(request) {request, HYPE_ARG_NONE, 0, 0}
#define INT(request) {request, HYPE_ARG_INT, 0, 0}
#define STRUCT(request) {request, HYPE_ARG_STRUCT, 0, 0}
#define VARIABLE(request, header, entry) {request, HYPE_ARG_VARIABLE, sizeof(header), sizeof(entry)}

// The ioctls the addon lets JS make. KVM_RUN is not here (it runs on a vCPU thread or in runPioLoop),
// nor is anything carrying a host pointer (KVM_SET_USER_MEMORY_REGION has its own entry point).
const struct hype_ioctl_spec hype_allowed_ioctls[] = {
    // system (/dev/kvm)
    NONE(KVM_GET_API_VERSION), INT(KVM_CREATE_VM), INT(KVM_CHECK_EXTENSION), NONE(KVM_GET_VCPU_MMAP_SIZE),
    VARIABLE(KVM_GET_SUPPORTED_CPUID, struct kvm_cpuid2, struct kvm_cpuid_entry2),
    VARIABLE(KVM_GET_MSR_INDEX_LIST, struct kvm_msr_list, __u32),
    VARIABLE(KVM_GET_MSR_FEATURE_INDEX_LIST, struct kvm_msr_list, __u32),
    // VM
    INT(KVM_CREATE_VCPU), INT(KVM_SET_TSS_ADDR), STRUCT(KVM_SET_IDENTITY_MAP_ADDR), NONE(KVM_CREATE_IRQCHIP),
    STRUCT(KVM_IRQ_LINE), STRUCT(KVM_IRQ_LINE_STATUS), STRUCT(KVM_GET_IRQCHIP), STRUCT(KVM_SET_IRQCHIP),
    VARIABLE(KVM_SET_GSI_ROUTING, struct kvm_irq_routing, struct kvm_irq_routing_entry),
    STRUCT(KVM_IRQFD), STRUCT(KVM_CREATE_PIT2), STRUCT(KVM_GET_PIT2), STRUCT(KVM_SET_PIT2), STRUCT(KVM_IOEVENTFD),
    STRUCT(KVM_REGISTER_COALESCED_MMIO), STRUCT(KVM_UNREGISTER_COALESCED_MMIO),
    STRUCT(KVM_SET_CLOCK), STRUCT(KVM_GET_CLOCK), STRUCT(KVM_SIGNAL_MSI), STRUCT(KVM_ENABLE_CAP),
    // vCPU
    STRUCT(KVM_GET_REGS), STRUCT(KVM_SET_REGS), STRUCT(KVM_GET_SREGS), STRUCT(KVM_SET_SREGS),
    STRUCT(KVM_TRANSLATE), STRUCT(KVM_INTERRUPT), NONE(KVM_NMI),
    VARIABLE(KVM_GET_MSRS, struct kvm_msrs, struct kvm_msr_entry),
    VARIABLE(KVM_SET_MSRS, struct kvm_msrs, struct kvm_msr_entry),
    STRUCT(KVM_GET_FPU), STRUCT(KVM_SET_FPU), STRUCT(KVM_GET_LAPIC), STRUCT(KVM_SET_LAPIC),
    VARIABLE(KVM_SET_CPUID2, struct kvm_cpuid2, struct kvm_cpuid_entry2),
    VARIABLE(KVM_GET_CPUID2, struct kvm_cpuid2, struct kvm_cpuid_entry2),
    STRUCT(KVM_GET_MP_STATE), STRUCT(KVM_SET_MP_STATE), STRUCT(KVM_SET_GUEST_DEBUG),
    STRUCT(KVM_GET_VCPU_EVENTS), STRUCT(KVM_SET_VCPU_EVENTS), STRUCT(KVM_GET_DEBUGREGS), STRUCT(KVM_SET_DEBUGREGS),
    STRUCT(KVM_GET_XSAVE), STRUCT(KVM_SET_XSAVE), STRUCT(KVM_GET_XCRS), STRUCT(KVM_SET_XCRS),
    INT(KVM_SET_TSC_KHZ), NONE(KVM_GET_TSC_KHZ), NONE(KVM_KVMCLOCK_CTRL),
};
const size_t hype_allowed_ioctl_count = COUNT(hype_allowed_ioctls);

const unsigned long hype_KVM_RUN = KVM_RUN;
const unsigned long hype_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;

#include <string.h>

size_t hype_offset(const char* layout, const char* field) {
  for (size_t i = 0; i < hype_layout_count; i++) {
    if (strcmp(hype_layouts[i].name, layout) != 0) continue;
    for (size_t j = 0; j < hype_layouts[i].field_count; j++) {
      if (strcmp(hype_layouts[i].fields[j].name, field) == 0) return (size_t)hype_layouts[i].fields[j].value;
    }
  }
  return (size_t)-1;
}

// KVM_ENABLE_CAP capabilities whose args carry a host pointer the kernel writes through
// (KVM_CAP_HYPERV_ENLIGHTENED_VMCS: args[0] = where to store the eVMCS version). Refused.
const unsigned long hype_KVM_ENABLE_CAP = KVM_ENABLE_CAP;
const unsigned int hype_caps_with_host_pointers[] = {KVM_CAP_HYPERV_ENLIGHTENED_VMCS};
const size_t hype_caps_with_host_pointers_count = COUNT(hype_caps_with_host_pointers);
