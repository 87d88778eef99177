// Byte layouts of the KVM structs hype encodes, as named offsets: THE one place they are written down.
// Field names are the C names (nested members joined with `_`). `size` is sizeof(struct).
// test/layout.test.ts compares every number here with offsetof/sizeof computed by the addon from
// <linux/kvm.h>, so a wrong offset fails the build instead of corrupting a vCPU.

export const kvm_regs = {
  size: 144,
  rax: 0, rbx: 8, rcx: 16, rdx: 24, rsi: 32, rdi: 40, rsp: 48, rbp: 56,
  r8: 64, r9: 72, r10: 80, r11: 88, r12: 96, r13: 104, r14: 112, r15: 120,
  rip: 128, rflags: 136,
} as const;

export const kvm_segment = {
  size: 24,
  base: 0, limit: 8, selector: 12, type: 14, present: 15, dpl: 16, db: 17, s: 18, l: 19, g: 20, avl: 21,
  unusable: 22, padding: 23,
} as const;

export const kvm_dtable = { size: 16, base: 0, limit: 8, padding: 10 } as const;

export const kvm_sregs = {
  size: 312,
  cs: 0, ds: 24, es: 48, fs: 72, gs: 96, ss: 120, tr: 144, ldt: 168, // kvm_segment each
  gdt: 192, idt: 208, // kvm_dtable each
  cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264, apic_base: 272,
  interrupt_bitmap: 280, // __u64[4]
} as const;

export const kvm_fpu = {
  size: 416,
  fpr: 0, // __u8[8][16]
  fcw: 128, fsw: 130, ftwx: 132, pad1: 133, last_opcode: 134, last_ip: 136, last_dp: 144,
  xmm: 152, // __u8[16][16]
  mxcsr: 408, pad2: 412,
} as const;

export const kvm_msr_entry = { size: 16, index: 0, reserved: 4, data: 8 } as const;
export const kvm_msrs = { size: 8, nmsrs: 0, pad: 4, entries: 8 } as const;
export const kvm_msr_list = { size: 4, nmsrs: 0, indices: 4 } as const;

export const kvm_cpuid_entry2 = {
  size: 40, function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24, padding: 28,
} as const;
export const kvm_cpuid2 = { size: 8, nent: 0, padding: 4, entries: 8 } as const;

export const kvm_lapic_state = { size: 1024, regs: 0 } as const;

export const kvm_vcpu_events = {
  size: 64,
  exception_injected: 0, exception_nr: 1, exception_has_error_code: 2, exception_pending: 3,
  exception_error_code: 4,
  interrupt_injected: 8, interrupt_nr: 9, interrupt_soft: 10, interrupt_shadow: 11,
  nmi_injected: 12, nmi_pending: 13, nmi_masked: 14, nmi_pad: 15,
  sipi_vector: 16, flags: 20,
  smi_smm: 24, smi_pending: 25, smi_smm_inside_nmi: 26, smi_latched_init: 27,
  triple_fault_pending: 28,
  reserved: 29, // __u8[26]
  exception_has_payload: 55, exception_payload: 56,
} as const;

export const kvm_mp_state = { size: 4, mp_state: 0 } as const;

export const kvm_userspace_memory_region = {
  size: 32, slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24,
} as const;

export const kvm_ioeventfd = { size: 64, datamatch: 0, addr: 8, len: 16, fd: 20, flags: 24, pad: 28 } as const;
export const kvm_irqfd = { size: 32, fd: 0, gsi: 4, flags: 8, resamplefd: 12, pad: 16 } as const;
export const kvm_irq_level = { size: 8, irq: 0, status: 0, level: 4 } as const;
export const kvm_pit_config = { size: 64, flags: 0, pad: 4 } as const;
export const kvm_enable_cap = { size: 104, cap: 0, flags: 4, args: 8, pad: 40 } as const;

export const kvm_run = {
  size: 2352,
  request_interrupt_window: 0, immediate_exit: 1, padding1: 2,
  exit_reason: 8, ready_for_interrupt_injection: 12, if_flag: 13, flags: 14,
  cr8: 16, apic_base: 24,
  // the exit union, at 32
  hw_hardware_exit_reason: 32,
  fail_entry_hardware_entry_failure_reason: 32, fail_entry_cpu: 40,
  ex_exception: 32, ex_error_code: 36,
  io_direction: 32, io_size: 33, io_port: 34, io_count: 36, io_data_offset: 40,
  debug_arch_exception: 32, debug_arch_pc: 40, debug_arch_dr6: 48, debug_arch_dr7: 56,
  mmio_phys_addr: 32, mmio_data: 40, mmio_len: 48, mmio_is_write: 52,
  internal_suberror: 32, internal_ndata: 36, internal_data: 40, // __u64[16]
  emulation_failure_flags: 40, emulation_failure_insn_size: 48, emulation_failure_insn_bytes: 49,
  system_event_type: 32, system_event_ndata: 36, system_event_data: 40, // __u64[16]
  msr_error: 32, msr_reason: 40, msr_index: 44, msr_data: 48,
  kvm_valid_regs: 288, kvm_dirty_regs: 296, s: 304,
} as const;

// Passed through ioctl by size only (hype does not encode their fields).
export const kvm_irqchip = { size: 520 } as const;
export const kvm_pit_state2 = { size: 112 } as const;
export const kvm_clock_data = { size: 48 } as const;
export const kvm_msi = { size: 32 } as const;
export const kvm_irq_routing = { size: 8 } as const;
export const kvm_irq_routing_entry = { size: 48 } as const;
export const kvm_translation = { size: 24 } as const;
export const kvm_interrupt = { size: 4 } as const;
export const kvm_guest_debug = { size: 72 } as const;
export const kvm_debugregs = { size: 128 } as const;
export const kvm_xsave = { size: 4096 } as const;
export const kvm_xcrs = { size: 392 } as const;

// Coalesced MMIO / port I/O: the zone KVM_(UN)REGISTER_COALESCED_MMIO takes, and the ring KVM fills with
// the writes to registered zones (one page of the vCPU mmap, at KVM_COALESCED_MMIO_PAGE_OFFSET pages).
export const kvm_coalesced_mmio_zone = { size: 16, addr: 0, zone_size: 8, pio: 12 } as const;
export const kvm_coalesced_mmio = { size: 24, phys_addr: 0, len: 8, pio: 12, data: 16 } as const;
export const kvm_coalesced_mmio_ring = { size: 8, first: 0, last: 4, coalesced_mmio: 8 } as const;

export const layouts = {
  kvm_regs, kvm_segment, kvm_dtable, kvm_sregs, kvm_fpu, kvm_msr_entry, kvm_msrs, kvm_msr_list,
  kvm_cpuid_entry2, kvm_cpuid2, kvm_lapic_state, kvm_vcpu_events, kvm_mp_state, kvm_userspace_memory_region,
  kvm_ioeventfd, kvm_irqfd, kvm_irq_level, kvm_pit_config, kvm_enable_cap, kvm_run,
  kvm_irqchip, kvm_pit_state2, kvm_clock_data, kvm_msi, kvm_irq_routing, kvm_irq_routing_entry,
  kvm_translation, kvm_interrupt, kvm_guest_debug, kvm_debugregs, kvm_xsave, kvm_xcrs,
  kvm_coalesced_mmio_zone, kvm_coalesced_mmio, kvm_coalesced_mmio_ring,
} as const;
