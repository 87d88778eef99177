import { addon, ioctls, layout, type NativeMapping, type NativeVcpuThread } from '@hype/kvm-sys';
import { closedError, ioctl, KvmError } from './errors.js';
import { PollGovernor, resolveExitPoll, shouldPollAgain, type ExitPollOptions } from './exit-poll.js';
import { resolveVcpuSpin } from './vcpu-spin.js';
import { KvmRun } from './kvm-run.js';
import type { PioReadMirror } from './pio-read-mirror.js';
import {
  decodeCpuid2, decodeFpu, decodeMsrs, decodeRegs, decodeSregs, decodeVcpuEvents, encodeCpuid2, encodeEnableCap,
  encodeFpu, encodeMsrs, encodeRegs, encodeSregs, encodeVcpuEvents,
  type CpuidEntry, type Fpu, type MsrEntry, type Regs, type Sregs, type VcpuEvents,
} from './structs.js';

/** What an exit handler tells the vCPU: re-enter the guest (nothing) or stop after this exit. */
export type ExitAction = void | 'stop';

/** Handles one exit on the JS thread: reads `run` (and writes the answer of an IN or MMIO read into it). */
export type ExitHandler = (run: KvmRun, vcpu: Vcpu) => ExitAction | Promise<ExitAction>;

export interface StartOptions {
  /** Busy-wait this long (ns) for the handler before the vCPU thread sleeps. Default: resolveVcpuSpin()
   * for a VM of one vCPU (HYPE_VCPU_SPIN_NS, else 20 µs on a host with more than one CPU, else 0);
   * a VM of several vCPUs should pass resolveVcpuSpin({ vcpus }). See vcpu-spin.ts for the measurements. */
  spinNs?: number;
  /** 1-byte port reads the vCPU thread answers itself from what device models published (see
   * PioReadMirror); the handler sees only the other exits. */
  pioReadMirror?: PioReadMirror;
  /** After a synchronous handler, wait briefly on the JS thread for the next exit and handle it inline
   * (see ExitPollOptions; default from resolveExitPoll: HYPE_EXIT_POLL, else on (a 1 ms cap, waits far shorter) on
   * a host with more than one CPU; a VM of several vCPUs should pass `{ vcpus }`). */
  exitPoll?: ExitPollOptions;
}

/** Why a vCPU's run ended normally: stop() (or a handler's 'stop'), or close(). */
export type VcpuStopReason = 'stopped' | 'closed';

const MAX_CPUID_ENTRIES = 256;

/** One vCPU: its registers and the native thread that runs it. */
export class Vcpu implements Disposable {
  readonly id: number;
  /** The vCPU's kvm_run area (valid until close()). */
  readonly run: KvmRun;
  #fd: number;
  #runMapping: NativeMapping;
  #thread: NativeVcpuThread | undefined;
  #settleClosed: (() => void) | undefined;
  #onClose: (vcpu: Vcpu) => void;
  #simulateKvmRun: boolean;

  /** @internal Created by Vm.createVcpu(). `simulateKvmRun` (tests only) runs the native thread against
   * the addon's stand-in for KVM_RUN. */
  constructor(id: number, fd: number, runMapping: NativeMapping, onClose: (vcpu: Vcpu) => void, simulateKvmRun = false) {
    this.id = id;
    this.#fd = fd;
    this.#runMapping = runMapping;
    this.run = new KvmRun(runMapping.buffer!);
    this.#onClose = onClose;
    this.#simulateKvmRun = simulateKvmRun;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** True while the vCPU thread exists (between start() and the end of the run). */
  get running(): boolean {
    return this.#thread?.running ?? false;
  }

  getRegs(): Regs {
    return decodeRegs(this.#get(ioctls.KVM_GET_REGS, layout.kvm_regs.size));
  }

  setRegs(regs: Regs): void {
    ioctl(this.#open(), ioctls.KVM_SET_REGS, encodeRegs(regs));
  }

  getSregs(): Sregs {
    return decodeSregs(this.#get(ioctls.KVM_GET_SREGS, layout.kvm_sregs.size));
  }

  setSregs(sregs: Sregs): void {
    ioctl(this.#open(), ioctls.KVM_SET_SREGS, encodeSregs(sregs));
  }

  getFpu(): Fpu {
    return decodeFpu(this.#get(ioctls.KVM_GET_FPU, layout.kvm_fpu.size));
  }

  setFpu(fpu: Fpu): void {
    ioctl(this.#open(), ioctls.KVM_SET_FPU, encodeFpu(fpu));
  }

  /** Reads the MSRs `indices`; throws naming the first MSR KVM could not read. */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    const bytes = encodeMsrs(indices.map((index) => ({ index, data: 0n })));
    const read = ioctl(this.#open(), ioctls.KVM_GET_MSRS, bytes);
    if (read < indices.length) {
      throw new Error(`ioctl KVM_GET_MSRS: MSR 0x${indices[read].toString(16)} could not be read (${read} of ${indices.length} read)`);
    }
    return decodeMsrs(bytes, read);
  }

  /** Writes MSRs; throws naming the first one KVM rejected. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const written = ioctl(this.#open(), ioctls.KVM_SET_MSRS, encodeMsrs(entries));
    if (written < entries.length) {
      throw new Error(`ioctl KVM_SET_MSRS: MSR 0x${entries[written].index.toString(16)} was rejected (${written} of ${entries.length} written)`);
    }
  }

  setCpuid2(entries: readonly CpuidEntry[]): void {
    ioctl(this.#open(), ioctls.KVM_SET_CPUID2, encodeCpuid2(entries));
  }

  getCpuid2(): CpuidEntry[] {
    const bytes = encodeCpuid2([], MAX_CPUID_ENTRIES);
    ioctl(this.#open(), ioctls.KVM_GET_CPUID2, bytes);
    return decodeCpuid2(bytes);
  }

  /** The local APIC's 1 KiB register page (KVM_GET_LAPIC; needs an in-kernel irqchip). */
  getLapic(): Uint8Array {
    return this.#get(ioctls.KVM_GET_LAPIC, layout.kvm_lapic_state.size);
  }

  setLapic(registers: Uint8Array): void {
    if (registers.length !== layout.kvm_lapic_state.size) throw new RangeError('setLapic: expected 1024 bytes');
    ioctl(this.#open(), ioctls.KVM_SET_LAPIC, registers);
  }

  getVcpuEvents(): VcpuEvents {
    return decodeVcpuEvents(this.#get(ioctls.KVM_GET_VCPU_EVENTS, layout.kvm_vcpu_events.size));
  }

  setVcpuEvents(events: VcpuEvents): void {
    ioctl(this.#open(), ioctls.KVM_SET_VCPU_EVENTS, encodeVcpuEvents(events));
  }

  /** KVM_MP_STATE_* (KvmMpState). */
  getMpState(): number {
    return new DataView(this.#get(ioctls.KVM_GET_MP_STATE, layout.kvm_mp_state.size).buffer).getUint32(0, true);
  }

  setMpState(state: number): void {
    const bytes = new Uint8Array(layout.kvm_mp_state.size);
    new DataView(bytes.buffer).setUint32(layout.kvm_mp_state.mp_state, state, true);
    ioctl(this.#open(), ioctls.KVM_SET_MP_STATE, bytes);
  }

  /** KVM_ENABLE_CAP on this vCPU. */
  enableCap(cap: number, args: readonly (number | bigint)[] = [], flags = 0): void {
    ioctl(this.#open(), ioctls.KVM_ENABLE_CAP, encodeEnableCap(cap, args, flags));
  }

  /**
   * Runs the vCPU on its own native thread until stop(), a handler returning 'stop', or close().
   * Every exit is handed to `handler` on the JS thread; the guest resumes when the handler returns (or
   * its promise settles). Resolves with why the run ended; rejects with the handler's error (the vCPU
   * is then stopped) or with `ioctl KVM_RUN failed: ...`.
   */
  start(handler: ExitHandler, options: StartOptions = {}): Promise<VcpuStopReason> {
    const fd = this.#open();
    if (this.running) throw new Error(`vCPU ${this.id} is already running`);
    const poll = resolveExitPoll(options.exitPoll);
    const spinNs = resolveVcpuSpin({ spinNs: options.spinNs });
    const governor = new PollGovernor(poll.budgetNs);
    return new Promise<VcpuStopReason>((resolve, reject) => {
      let failure: { error: unknown } | undefined;
      let site = -1; // the exit site last handled (polling only): what the next exit's resumeToExitNs teaches
      const complete = (action: ExitAction) => {
        if (!thread.exitPending) return; // closed meanwhile
        if (action === 'stop') thread.stop();
        thread.resume();
      };
      const fail = (error: unknown) => {
        failure ??= { error };
        thread.stop();
        if (thread.exitPending) thread.resume();
      };
      const onExit = () => {
        const startedMs = poll.budgetNs > 0 ? performance.now() : 0;
        if (poll.budgetNs > 0) governor.noteDelivery(thread.deliveryNs);
        for (let inline = 0; ; inline++) {
          if (poll.budgetNs > 0) {
            if (site >= 0) governor.learn(site, thread.resumeToExitNs);
            site = this.run.exitSite;
          }
          let action: ExitAction | Promise<ExitAction>;
          try {
            action = handler(this.run, this);
          } catch (error) {
            fail(error);
            return;
          }
          if (action instanceof Promise) {
            action.then(complete, fail);
            return;
          }
          const budgetNs = action === 'stop' ? 0 : governor.budgetAfter(site);
          if (budgetNs === 0 || !shouldPollAgain(poll, inline, startedMs, performance.now())) {
            complete(action);
            return;
          }
          if (!thread.exitPending) return; // closed meanwhile
          if (!thread.resumeAndPoll(budgetNs, poll.spinNs === undefined ? undefined : Math.min(poll.spinNs, budgetNs))) return;
        }
      };
      const onStop = (errno: number) => {
        this.#settleClosed = undefined;
        if (failure) reject(failure.error);
        else if (errno !== 0) reject(new KvmError('ioctl KVM_RUN', errno, { detail: `vCPU ${this.id}` }));
        else resolve('stopped');
      };
      const thread = new (addon().VcpuThread)(fd, this.#runMapping, onExit, onStop, {
        spinNs,
        simulate: this.#simulateKvmRun,
        ...(options.pioReadMirror ? { pioReadMirror: options.pioReadMirror.mapping } : {}),
      });
      thread.start();
      this.#thread = thread;
      this.#settleClosed = () => resolve('closed');
    });
  }

  /** Asks a running vCPU to stop (kick signal + immediate_exit); start()'s promise resolves 'stopped'.
   * An exit being handled is completed first. */
  stop(): void {
    this.#thread?.stop();
  }

  /**
   * Has the running vCPU's own thread record its MP state (KVM_GET_MP_STATE) and RFLAGS, between two
   * KVM_RUNs; `probeResult.count` goes up when done. Costs the guest one exit; a no-op when not running.
   */
  probe(): void {
    this.#thread?.probe();
  }

  /** The last probe's result (`count` 0: none yet), or undefined when the vCPU was never started. */
  get probeResult(): { count: number; mpState: number; rflags: number; errno: number } | undefined {
    return this.#thread?.probeResult;
  }

  /** Exits handed to the handler through the exit poll (StartOptions.exitPoll) so far. */
  get polledExits(): number {
    return this.#thread?.polledExits ?? 0;
  }

  /** Port reads the vCPU thread answered from the pioReadMirror in the last (or current) run. */
  get pioMirrorHits(): number {
    return this.#thread?.pioMirrorHits ?? 0;
  }

  /** The kernel task id of the running vCPU thread (0 when not running), e.g. for /proc/self/task/<tid>/stat. */
  get threadId(): number {
    return this.#thread?.tid ?? 0;
  }

  /** Benchmark baseline: KVM_RUN in a loop on the calling thread with every exit a port I/O completed in
   * C; returns the nanoseconds between consecutive exits. Blocks the JS thread. */
  runPioLoopNative(exits: number): Float64Array {
    this.#open();
    if (this.running) throw new Error(`vCPU ${this.id} is running on its thread`);
    return addon().runPioLoop(this.#fd, this.#runMapping, exits);
  }

  /** Ends the vCPU thread (abandoning an exit being handled), unmaps kvm_run, closes the fd. */
  close(): void {
    if (this.#fd < 0) return;
    let joined = true;
    if (this.#thread?.running) joined = this.#thread.join();
    this.#settleClosed?.();
    this.#settleClosed = undefined;
    // A thread stuck in KVM_RUN keeps its kvm_run page: it may still write to it.
    if (joined) this.#runMapping.close();
    addon().close(this.#fd);
    this.#fd = -1;
    this.#onClose(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#fd < 0) throw closedError(`vCPU ${this.id}`);
    return this.#fd;
  }

  #get(request: number, size: number): Uint8Array {
    const bytes = new Uint8Array(size);
    ioctl(this.#open(), request, bytes);
    return bytes;
  }
}
