import { KvmInternalError } from '@hype/kvm';
import { fetchInstructionBytes, instructionPointer } from './cpu/insn-fetch.js';
import type { GuestMemory } from './cpu/paging.js';
import { cpl, type VcpuRegs, type VcpuSegment, type VcpuSregs } from './cpu/state.js';

const SUBERROR_NAMES: Record<number, string> = {
  [KvmInternalError.EMULATION]: 'instruction emulation failed',
  [KvmInternalError.SIMUL_EX]: 'exception while delivering an exception',
  [KvmInternalError.DELIVERY_EV]: 'event delivery failed',
  [KvmInternalError.UNEXPECTED_EXIT_REASON]: 'unexpected exit reason',
};

/** How the VM ended. */
export type VmExit =
  /**
   * The guest powered off: through ACPI (the S5 sleep register; status 0) or by writing its exit status
   * to the hype debug port 0xf4.
   */
  | { kind: 'poweroff'; status: number }
  /** The guest reset the machine (i8042 reset: Linux `reboot`, or `panic=-1` after a panic; the ACPI reset register). */
  | { kind: 'reboot'; source: 'i8042' | 'acpi' | 'system-event' }
  /**
   * Every vCPU halted with interrupts disabled (a kernel without ACPI ends `poweroff -f` this way):
   * nothing can wake the guest again.
   */
  | { kind: 'halted' }
  /** KVM_EXIT_SHUTDOWN: a triple fault (or an SVM shutdown intercept) on `vcpu`. */
  | { kind: 'shutdown'; vcpu: number }
  /** KVM_EXIT_INTERNAL_ERROR that no host quirk handled. */
  | { kind: 'internal-error'; vcpu: number; report: InternalErrorReport }
  /** The host stopped the VM (a signal such as SIGINT/SIGTERM, or `vm.stop()`). */
  | { kind: 'stopped'; reason: string };

export interface InternalErrorReport {
  suberror: number;
  /** `kvm_run.internal.data[0 .. ndata)`. */
  data: bigint[];
  /** Linear address of CS:RIP. */
  insnAddress: bigint;
  /** Bytes at CS:RIP: from KVM when it supplied them, else read through the guest's page tables. */
  insnBytes: Uint8Array;
  insnSource: 'kvm' | 'guest-memory';
  regs: VcpuRegs;
  sregs: VcpuSregs;
}

export function buildInternalErrorReport(args: {
  suberror: number;
  data: readonly bigint[];
  /** The instruction bytes KVM supplied with an emulation failure (`KvmRun.internalError`), if any. */
  instructionBytes?: Uint8Array;
  regs: VcpuRegs;
  sregs: VcpuSregs;
  mem: GuestMemory;
}): InternalErrorReport {
  const { suberror, regs, sregs, mem } = args;
  const fromKvm = args.instructionBytes;
  const insnBytes = fromKvm && fromKvm.length > 0 ? fromKvm : fetchInstructionBytes(mem, regs, sregs);
  return {
    suberror,
    data: [...args.data],
    insnAddress: instructionPointer(regs, sregs),
    insnBytes,
    insnSource: fromKvm && fromKvm.length > 0 ? 'kvm' : 'guest-memory',
    regs,
    sregs,
  };
}

const h64 = (v: bigint) => v.toString(16).padStart(16, '0');
const h = (v: number | bigint, width = 0) => v.toString(16).padStart(width, '0');

export function formatBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => h(b, 2)).join(' ');
}

function formatSegment(name: string, s: VcpuSegment): string {
  const attrs = `type=${h(s.type)} dpl=${s.dpl} p=${s.present} s=${s.s} l=${s.l} db=${s.db} g=${s.g}${s.unusable ? ' unusable' : ''}`;
  return `${name.toUpperCase().padEnd(3)}=${h(s.selector, 4)} base=${h64(s.base)} limit=${h(s.limit, 8)} ${attrs}`;
}

/** A register dump in the style of QEMU's / KVM's, one line per group. */
export function formatRegisters(regs: VcpuRegs, sregs: VcpuSregs): string {
  const r = (n: keyof VcpuRegs) => `${n.toUpperCase().padEnd(3)}=${h64(regs[n])}`;
  const lines = [
    [r('rax'), r('rbx'), r('rcx'), r('rdx')].join(' '),
    [r('rsi'), r('rdi'), r('rbp'), r('rsp')].join(' '),
    [r('r8'), r('r9'), r('r10'), r('r11')].join(' '),
    [r('r12'), r('r13'), r('r14'), r('r15')].join(' '),
    `${r('rip')} RFL=${h(regs.rflags, 8)} CPL=${cpl(sregs)}`,
    ...(['cs', 'ss', 'ds', 'es', 'fs', 'gs', 'tr', 'ldt'] as const).map((s) => formatSegment(s, sregs[s])),
    `GDT=${h64(sregs.gdt.base)} ${h(sregs.gdt.limit, 4)}  IDT=${h64(sregs.idt.base)} ${h(sregs.idt.limit, 4)}`,
    `CR0=${h(sregs.cr0, 8)} CR2=${h64(sregs.cr2)} CR3=${h64(sregs.cr3)} CR4=${h(sregs.cr4, 8)} CR8=${h(sregs.cr8)}`,
    `EFER=${h(sregs.efer, 8)} APIC_BASE=${h(sregs.apicBase, 8)}`,
  ];
  return lines.join('\n');
}

/** The full multi-line report for an unhandled internal error. */
export function formatInternalError(vcpu: number, report: InternalErrorReport): string {
  const what = SUBERROR_NAMES[report.suberror] ?? `suberror ${report.suberror}`;
  const bytes = report.insnBytes.length > 0 ? formatBytes(report.insnBytes) : '(not readable)';
  const lines = [
    `vCPU ${vcpu}: KVM internal error: ${what}`,
    `instruction at ${h64(report.insnAddress)}: ${bytes} (${report.insnSource === 'kvm' ? 'from KVM' : 'read from guest memory'})`,
  ];
  if (report.data.length > 0) lines.push(`data: ${report.data.map((d) => h(d)).join(' ')}`);
  lines.push(formatRegisters(report.regs, report.sregs));
  return lines.join('\n');
}

/** One line describing how the VM ended. */
export function describeExit(exit: VmExit): string {
  switch (exit.kind) {
    case 'poweroff':
      return `guest powered off with status ${exit.status}`;
    case 'reboot':
      return exit.source === 'i8042' ? 'guest requested a reboot (i8042 reset)' : exit.source === 'acpi' ? 'guest requested a reboot (ACPI reset register)' : 'guest requested a reboot';
    case 'halted':
      return 'guest halted: every vCPU stopped with interrupts disabled (a power-off without ACPI)';
    case 'shutdown':
      return `vCPU ${exit.vcpu} shut down (triple fault)`;
    case 'internal-error': {
      const r = exit.report;
      const what = SUBERROR_NAMES[r.suberror] ?? `suberror ${r.suberror}`;
      return `vCPU ${exit.vcpu}: KVM internal error (${what}) at ${h64(r.insnAddress)}: ${formatBytes(r.insnBytes) || 'instruction not readable'}`;
    }
    case 'stopped':
      return `stopped by the host (${exit.reason})`;
  }
}
