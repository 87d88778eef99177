/**
 * Notices a guest that stopped for good without telling the VMM: every vCPU halted with interrupts
 * disabled (KVM_MP_STATE_HALTED, RFLAGS.IF clear), which is how a kernel without ACPI ends `poweroff -f`
 * ("reboot: System halted"). With the in-kernel irqchip such a halt never exits to user space, so this
 * looks every `intervalMs`: only when every vCPU thread is asleep in the kernel (idle or halted, so no
 * guest code is running to be interrupted) are the vCPUs probed (one exit each); two rounds in a row
 * that find every vCPU halted with IF clear end the VM.
 */
import { readFileSync } from 'node:fs';
import { KvmMpState } from '@hype/kvm';

const RFLAGS_IF = 0x200;

/** What HaltWatch needs of a vCPU (@hype/kvm's Vcpu). */
export interface ProbedVcpu {
  readonly threadId: number;
  readonly probeResult: { count: number; mpState: number; rflags: number; errno: number } | undefined;
  probe(): void;
}

/** The scheduler state letter of a thread of this process ('R', 'S', ...), or undefined. */
export function threadState(tid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || undefined;
  } catch {
    return undefined;
  }
}

export interface HaltWatchOptions {
  intervalMs?: number;
  /** Rounds in a row that must find every vCPU halted with IF clear. */
  rounds?: number;
  readThreadState?: (tid: number) => string | undefined;
}

export class HaltWatch {
  private timer: ReturnType<typeof setInterval> | undefined;
  private pending: number[] | undefined;
  private streak = 0;
  private readonly rounds: number;
  private readonly readThreadState: (tid: number) => string | undefined;

  constructor(
    private readonly vcpus: readonly ProbedVcpu[],
    private readonly onHalted: () => void,
    private readonly options: HaltWatchOptions = {},
  ) {
    this.rounds = options.rounds ?? 2;
    this.readThreadState = options.readThreadState ?? threadState;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.options.intervalMs ?? 1000);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look (the timer calls it; tests call it directly). */
  tick(): void {
    const asleep = this.vcpus.every((v) => v.threadId > 0 && this.readThreadState(v.threadId) === 'S');
    if (!asleep) {
      this.pending = undefined;
      this.streak = 0;
      return;
    }
    if (this.pending) {
      const results = this.vcpus.map((v, i) => (v.probeResult && v.probeResult.count > this.pending![i]! ? v.probeResult : undefined));
      if (results.every((r) => r !== undefined)) {
        const halted = results.every((r) => r!.errno === 0 && r!.mpState === KvmMpState.HALTED && (r!.rflags & RFLAGS_IF) === 0);
        this.streak = halted ? this.streak + 1 : 0;
        if (this.streak >= this.rounds) {
          this.stop();
          this.onHalted();
          return;
        }
      }
    }
    this.pending = this.vcpus.map((v) => v.probeResult?.count ?? 0);
    for (const v of this.vcpus) v.probe();
  }
}
