/**
 * The host-quirks layer: workarounds for KVM provided by kvm_pvm (README.md, host quirks). Active only when
 * detected (or forced); when inactive every method is the identity / "not handled", so an ordinary
 * KVM host sees no difference. Even when active, run-time fixes act only on emulation-failure exits.
 */
import { KvmInternalError } from '@hype/kvm';
import { clearCpuidBit, Cpuid1Ecx, KvmFeature, Leaf, type CpuidEntry } from '../cpu/cpuid.js';
import { fetchInstructionBytes } from '../cpu/insn-fetch.js';
import { Msr } from '../cpu/msrs.js';
import type { GuestMemory } from '../cpu/paging.js';
import { in64BitMode, type VcpuRegs, type VcpuSregs } from '../cpu/state.js';
import { formatBytes } from '../lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import { PVM_CMDLINE_ADDITIONS, mergeCmdline } from './cmdline.js';
import { detectHostQuirks, type DetectOptions, type HostQuirkDetection } from './detect.js';
import { applyFallback, decodeFallback } from './fallbacks.js';
import { PageFaultTrap, decideTrapHit, trapSiteFromIdt, type PlantResult, type TrapSite } from './syscall-entry.js';

/**
 * While the trap is not planted, IDT gate 14 is probed on the first call and then on every this-many
 * calls of `ensureSyscallTrap`: each probe costs a KVM_GET_SREGS, and a boot has many exits (UART
 * output) before user space makes its first syscall.
 */
export const IDT_PROBE_INTERVAL = 64;

/**
 * KVM paravirt features whose guest side issues hypercalls (`vmcall`/`vmmcall`). Under kvm_pvm a guest
 * with 2 vCPUs hung for good at "x86: Booting SMP configuration" with these advertised, and booted
 * with them hidden (measured 2026-12-06; `nopv` on the kernel command line also avoided the hang).
 */
export const PVM_HIDDEN_KVM_FEATURES: readonly number[] = [
  KvmFeature.PV_UNHALT,
  KvmFeature.PV_TLB_FLUSH,
  KvmFeature.PV_SEND_IPI,
  KvmFeature.PV_SCHED_YIELD,
];

export type QuirkName = 'int3' | 'clac' | 'stac' | 'fwait' | 'popcnt' | 'syscall-entry' | 'page-fault-trap';

/** A KVM_EXIT_INTERNAL_ERROR as the quirks layer needs it. */
export interface EmulationFailure {
  /** `kvm_run.internal.suberror`; only KVM_INTERNAL_ERROR_EMULATION (1) is acted on. */
  suberror: number;
  regs: VcpuRegs;
  sregs: VcpuSregs;
  /** `emulation_failure.insn_bytes` when KVM supplied them; otherwise read at CS:RIP from guest memory. */
  insnBytes?: Uint8Array;
  /** KVM_GET_MSRS of one MSR on this vCPU (called only when a decision needs it). */
  readMsr(index: number): bigint;
}

/**
 * What to do with the vCPU before resuming it: KVM_SET_REGS with `regs`, KVM_SET_SREGS with `sregs`
 * when present, and for `inject` KVM_GET_VCPU_EVENTS / set `exception.injected = 1`,
 * `exception.nr = vector`, `has_error_code = 0` / KVM_SET_VCPU_EVENTS.
 */
export type QuirkOutcome =
  | { handled: true; quirk: QuirkName; regs: VcpuRegs; sregs?: VcpuSregs; inject?: { vector: number } }
  | { handled: false; reason: string };

export interface HostQuirksOptions extends DetectOptions {
  logger?: Logger;
  /** Skip detection and use this result (tests, or a caller that already detected). */
  detection?: HostQuirkDetection;
}

export class HostQuirks {
  readonly active: boolean;
  readonly reason: string;
  /** How often each fix ran. */
  readonly counts: Record<QuirkName, number> = {
    int3: 0, clac: 0, stac: 0, fwait: 0, popcnt: 0, 'syscall-entry': 0, 'page-fault-trap': 0,
  };
  private trap: PageFaultTrap | undefined;
  private idtProbeCountdown = 0;
  private readonly logger: Logger;

  constructor(
    private readonly mem: GuestMemory,
    opts: HostQuirksOptions = {},
  ) {
    const d = opts.detection ?? detectHostQuirks(opts);
    this.active = d.active;
    this.reason = d.reason;
    this.logger = opts.logger ?? silentLogger;
    this.logger.debug(`host quirks ${d.active ? 'active' : 'inactive'}: ${d.reason}`);
  }

  /** The kernel command line with the PVM additions merged in (unchanged when inactive). */
  cmdline(base: string): string {
    return this.active ? mergeCmdline(base, PVM_CMDLINE_ADDITIONS) : base;
  }

  /** CPUID with CX16 cleared (SLUB's cmpxchg16b is not emulated); an unchanged copy when inactive. */
  cpuid(entries: readonly CpuidEntry[]): CpuidEntry[] {
    if (!this.active) return entries.map((e) => ({ ...e }));
    let out = clearCpuidBit(entries, Leaf.FEATURES, 0, 'ecx', Cpuid1Ecx.CX16);
    for (const bit of PVM_HIDDEN_KVM_FEATURES) out = clearCpuidBit(out, Leaf.KVM_FEATURES, 0, 'eax', bit);
    return out;
  }

  /** The planted #PF trap, if any. */
  get syscallTrap(): PageFaultTrap | undefined {
    return this.trap;
  }

  /**
   * Plants the syscall-fix trap at a known site, e.g. `asm_exc_page_fault` from the vmlinux symbol
   * table (gpa through its PT_LOAD segment) before the first KVM_RUN.
   */
  armSyscallTrapAt(site: TrapSite): PlantResult {
    if (!this.active) return { planted: false, reason: 'host quirks inactive' };
    if (this.trap && this.trap.site.gva === site.gva && this.trap.site.gpa === site.gpa) {
      return this.trap.rearm(this.mem) ? { planted: true, trap: this.trap } : { planted: false, reason: 'slot no longer recognizable' };
    }
    const r = PageFaultTrap.plant(this.mem, site);
    if (r.planted) {
      this.trap?.remove(this.mem);
      this.trap = r.trap;
      this.logger.debug(`syscall fix: int3 planted at 0x${site.gva.toString(16)} over ${r.trap.displaced.name}`);
    } else {
      this.logger.debug(`syscall fix: not planted: ${r.reason}`);
    }
    return r;
  }

  /**
   * Keeps the trap in place; call it on exits (cheap once planted: one byte compare). Until it is
   * planted, probes IDT gate 14 (throttled, see IDT_PROBE_INTERVAL; `getSregs` is only called then,
   * or when `recheckIdt` asks to follow the IDT to a new handler), and re-plants it if the guest
   * patched the slot. Returns whether the trap is armed.
   */
  ensureSyscallTrap(getSregs: () => VcpuSregs, opts: { recheckIdt?: boolean } = {}): boolean {
    if (!this.active) return false;
    if (opts.recheckIdt) {
      this.followIdt(getSregs());
    } else if (!this.trap && this.idtProbeCountdown-- <= 0) {
      this.idtProbeCountdown = IDT_PROBE_INTERVAL - 1;
      this.followIdt(getSregs());
    }
    return this.trap !== undefined && this.trap.rearm(this.mem);
  }

  private followIdt(sregs: VcpuSregs): void {
    const site = trapSiteFromIdt(this.mem, sregs);
    if (!site || (this.trap && this.trap.site.gva === site.gva)) return;
    this.armSyscallTrapAt(site);
  }

  /** Tries every fix on one emulation-failure exit; inert (not handled) when inactive. */
  onEmulationFailure(f: EmulationFailure): QuirkOutcome {
    if (!this.active) return { handled: false, reason: 'host quirks inactive' };
    if (f.suberror !== KvmInternalError.EMULATION) return { handled: false, reason: `suberror ${f.suberror} is not an emulation failure` };
    const { regs, sregs } = f;

    if (this.trap && regs.rip === this.trap.site.gva && this.trap.isArmed(this.mem)) {
      const d = decideTrapHit(this.mem, regs, sregs, this.trap, () => ({
        star: f.readMsr(Msr.STAR),
        lstar: f.readMsr(Msr.LSTAR),
        sfmask: f.readMsr(Msr.SYSCALL_MASK),
      }));
      if (d.action === 'syscall-entry') return this.done('syscall-entry', { regs: d.regs, sregs: d.sregs });
      this.followIdt(sregs);
      return this.done('page-fault-trap', { regs: d.regs });
    }

    const bytes = f.insnBytes && f.insnBytes.length > 0 ? f.insnBytes : fetchInstructionBytes(this.mem, regs, sregs);
    const fallback = decodeFallback(bytes, in64BitMode(sregs));
    if (!fallback) {
      return { handled: false, reason: bytes.length ? `no fallback for instruction ${formatBytes(bytes)}` : 'instruction bytes not readable' };
    }
    const effect = applyFallback(fallback, regs, sregs);
    return this.done(fallback.kind, effect);
  }

  private done(quirk: QuirkName, r: { regs: VcpuRegs; sregs?: VcpuSregs; inject?: { vector: number } }): QuirkOutcome {
    if (this.counts[quirk]++ === 0) this.logger.debug(`host quirk first used: ${quirk}`);
    return { handled: true, quirk, ...r };
  }
}
