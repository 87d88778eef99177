import {
  KvmExit, KvmInternalError, KvmSystemEvent, resolveVcpuSpin, type ExitPollOptions, type KvmRun, type PioReadMirror, type Regs, type Sregs, type Vcpu,
} from '@hype/kvm';
import {
  AgentError,
  type AgentClient,
  type AgentInfo,
  type AgentProcess,
  type ExecOptions,
  type ExecResult,
  type ReadFileOptions,
  type SpawnOptions,
  type StdinSource,
  type WriteFileOptions,
} from '@hype/guest-agent';
import type { GuestMemory } from '@hype/guest-memory';
import { dispatchPio, type Bus } from '../bus.js';
import type { BootMarker } from '../devices/debug-port.js';
import { COM1_PORT, UART_PORT_COUNT } from '../devices/uart8250.js';
import { buildInternalErrorReport, describeExit, type VmExit } from '../lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import type { HostQuirks } from '../quirks/index.js';
import type { CoalescedPio } from './coalesced-pio.js';
import { HaltWatch, type ProbedVcpu } from './halt-watch.js';
import type { Teardown } from './teardown.js';

/**
 * createVm's steps (`vm-ram`: KVM opened and guest RAM mapped; `vm-devices`: the platform and virtio
 * devices attached; `vm-loaded`: kernel, initrd and boot tables in guest RAM; `vm-created`: vCPUs ready),
 * then the run's.
 */
export type TimingEventName = 'vm-ram' | 'vm-devices' | 'vm-loaded' | 'vm-created' | 'first-kvm-run' | 'boot-marker' | 'exit';

export interface TimingEvent {
  event: TimingEventName;
  /** Milliseconds since the process started (`performance.now()`). */
  ms: number;
  /** The marker value of a boot-marker event. */
  value?: number;
  /** Exits so far (boot-marker and exit events). */
  exits?: ExitCounts;
}

/** KVM exits of all vCPUs so far, by kind. */
export interface ExitCounts {
  /** Every exit, including those answered from the read mirror on the vCPU threads. */
  all: number;
  /** Port I/O exits, including the mirrored ones. */
  pio: number;
  /** Port I/O exits to the 8250 UART (COM1) handled in JavaScript (mirrored ones not included). */
  uart: number;
  mmio: number;
  /** Port reads answered from the read mirror on the vCPU threads (never reaching JavaScript). */
  mirrored: number;
  /** Port writes KVM queued in its coalesced ring instead of exiting, delivered to the devices in batches (not in `all`). */
  coalesced: number;
}

/** What the Machine uses of a vCPU (@hype/kvm's Vcpu; tests pass scripted ones). */
export type MachineVcpu = ProbedVcpu &
  Pick<Vcpu, 'id' | 'stop' | 'getRegs' | 'setRegs' | 'getSregs' | 'setSregs' | 'getMsrs' | 'getVcpuEvents' | 'setVcpuEvents'> & {
    /** Runs the vCPU on its thread, calling `handler` for each exit, until it returns 'stop' or stop() is called. */
    start(
      handler: (run: KvmRun, vcpu: MachineVcpu) => 'stop' | void,
      options?: { pioReadMirror?: PioReadMirror; exitPoll?: ExitPollOptions },
    ): Promise<unknown>;
    /** Port reads the vCPU thread answered from the read mirror. */
    readonly pioMirrorHits?: number;
  };

/** Everything a Machine runs: what createVm built, step by step. */
export interface MachineParts {
  /** Guest RAM, for the instruction bytes of an internal-error report. */
  memory: GuestMemory;
  vcpus: readonly MachineVcpu[];
  pio: Bus;
  mmio: Bus;
  /** Register reads answered on the vCPU threads (the devices on `pio` publish into it). */
  pioReadMirror?: PioReadMirror;
  /** Polling for the next exit on the JS thread (@hype/kvm's StartOptions.exitPoll); default: the
   * environment (HYPE_EXIT_POLL=<budget ns>, 0: off), else @hype/kvm's default for this many vCPUs. */
  exitPoll?: ExitPollOptions;
  /** Posted port writes: drained before every exit is handled, started with the vCPUs (createVm closes it). */
  coalescedPio?: Pick<CoalescedPio, 'drain' | 'start' | 'delivered'>;
  quirks: HostQuirks;
  /** Where writeConsole() bytes go (the virtio console's or the UART's input queue). */
  consoleInput: { write(bytes: Uint8Array): void };
  /** Boot markers the guest wrote to the debug port, as they arrive. */
  markers: BootMarker[];
  /** Releases everything createVm set up; run once, when run() settles or by close(). */
  teardown: Teardown;
  logger?: Logger;
  timing?: (event: TimingEventName, value?: number) => void;
  cmdline: string;
  /** The guest agent's client, when the config named how to reach it. */
  agent?: AgentClient;
}

/**
 * A running (or ready to run) VM: KVM, guest RAM, the loaded kernel, devices and vCPUs. Build it with
 * `createVm`, then `run()` until the guest stops; resources are released when `run()` settles (or by
 * `close()` if it never runs).
 */
export class Machine {
  readonly markers: BootMarker[];
  /** Whether the PVM host-quirk layer is active, and why. */
  readonly hostQuirks: { active: boolean; reason: string; counts: Readonly<Record<string, number>> };
  readonly cmdline: string;
  private exit: VmExit | undefined;
  private failure: unknown;
  private started = false;
  private closed = false;

  private readonly memory: GuestMemory;
  private readonly vcpus: readonly MachineVcpu[];
  private readonly pio: Bus;
  private readonly mmio: Bus;
  private readonly pioReadMirror: PioReadMirror | undefined;
  private readonly coalescedPio: MachineParts['coalescedPio'];
  private readonly exitPoll: ExitPollOptions | undefined;
  /** Exits handled here (JS), by kind. */
  private readonly handled = { all: 0, pio: 0, uart: 0, mmio: 0 };
  private readonly quirks: HostQuirks;
  private readonly consoleInput: { write(bytes: Uint8Array): void };
  private readonly teardown: Teardown;
  private readonly logger: Logger;
  private readonly timing: (event: TimingEventName, value?: number) => void;
  private readonly agent: AgentClient | undefined;
  /** Aborts when the VM ends, so that ready() stops waiting. */
  private readonly ended = new AbortController();

  /** Use createVm(); tests build one from parts without KVM. */
  constructor(parts: MachineParts) {
    this.memory = parts.memory;
    this.vcpus = parts.vcpus;
    this.pio = parts.pio;
    this.mmio = parts.mmio;
    this.pioReadMirror = parts.pioReadMirror;
    this.coalescedPio = parts.coalescedPio;
    this.exitPoll = parts.exitPoll;
    this.quirks = parts.quirks;
    this.consoleInput = parts.consoleInput;
    this.teardown = parts.teardown;
    this.logger = parts.logger ?? silentLogger;
    this.timing = parts.timing ?? (() => {});
    this.markers = parts.markers;
    this.hostQuirks = parts.quirks;
    this.cmdline = parts.cmdline;
    this.agent = parts.agent;
  }

  /** Bytes for the guest console (buffered until the guest reads them). */
  writeConsole(bytes: Uint8Array): void {
    if (!this.closed) this.consoleInput.write(bytes);
  }

  /** KVM exits of all vCPUs so far, by kind (see ExitCounts). */
  exitCounts(): ExitCounts {
    let mirrored = 0;
    for (const vcpu of this.vcpus) mirrored += vcpu.pioMirrorHits ?? 0;
    const { all, pio, uart, mmio } = this.handled;
    return { all: all + mirrored, pio: pio + mirrored, uart, mmio, mirrored, coalesced: this.coalescedPio?.delivered ?? 0 };
  }

  /** Ends the VM from the host side: run() resolves { kind: 'stopped', reason }. Idempotent. */
  stop(reason = 'stopped by the host'): void {
    this.finish({ kind: 'stopped', reason });
  }

  /** @internal A VMM-side failure outside an exit (a device failing on a posted write): run() rejects with it. */
  fail(error: unknown, reason: string): void {
    this.failure ??= error;
    this.finish({ kind: 'stopped', reason });
  }

  /** @internal devices end the VM through this (power off, reset). */
  finish(exit: VmExit): void {
    if (this.exit) return;
    this.exit = exit;
    this.ended.abort(new Error(`the VM ended (${describeExit(exit)})`));
    this.timing('exit');
    for (const vcpu of this.vcpus) vcpu.stop();
  }

  /**
   * Resolves once the guest agent answers (the guest has booted far enough to run commands); rejects with
   * AgentError `timeout` after `timeoutMs` (default 60 000) and `no-agent` when the VM ends first or has
   * no agent (createVm's `config.agent`).
   */
  ready(options: { timeoutMs?: number } = {}): Promise<AgentInfo> {
    return this.withAgent((agent) => agent.ready({ ...options, signal: this.ended.signal }));
  }

  /** Runs a command in the guest to its end: `{ stdout, stderr, exitCode, signal }` (@hype/guest-agent's exec). */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    return this.withAgent((agent) => agent.exec(argv, options));
  }

  /** Starts a command in the guest and streams it (a ChildProcess-like AgentProcess). */
  spawn(argv: readonly string[], options?: SpawnOptions): AgentProcess {
    return this.requireAgent().spawn(argv, options);
  }

  /** Writes a file in the guest (created or truncated; `mode` applied exactly). */
  writeFile(path: string, data: StdinSource, options?: WriteFileOptions): Promise<void> {
    return this.withAgent((agent) => agent.writeFile(path, data, options));
  }

  /** Reads a file of the guest. */
  readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array> {
    return this.withAgent((agent) => agent.readFile(path, options));
  }

  private requireAgent(): AgentClient {
    if (this.agent) return this.agent;
    throw new AgentError(
      'no-agent',
      'this VM has no guest agent: give createVm config.agent, e.g. () => vsock.connect(DEFAULT_AGENT_PORT) for a VsockDevice in config.devices',
    );
  }

  private withAgent<T>(call: (agent: AgentClient) => Promise<T>): Promise<T> {
    try {
      return call(this.requireAgent());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs every vCPU on its own thread until the guest powers off, reboots, faults, or stop() is
   * called; then releases everything and resolves with how the VM ended. Rejects only for VMM failures
   * (a KVM_RUN error, a bug in an exit handler), after releasing everything too.
   */
  async run(): Promise<VmExit> {
    if (this.started) throw new Error('run(): this VM has already run');
    if (this.closed) throw new Error('run(): this VM is closed');
    this.started = true;
    this.timing('first-kvm-run');
    const options = {
      spinNs: resolveVcpuSpin({ vcpus: this.vcpus.length }),
      ...(this.pioReadMirror ? { pioReadMirror: this.pioReadMirror } : {}),
      exitPoll: { ...this.exitPoll, vcpus: this.vcpus.length },
    };
    const runs = this.vcpus.map((vcpu) =>
      vcpu
        .start((run, v) => this.onExit(run, v), options)
        .catch((error: unknown) => {
          this.failure ??= error;
          this.finish({ kind: 'stopped', reason: `vCPU ${vcpu.id} failed` });
        }),
    );
    // A stop() before run() started the threads: they still start, and stop at their first exit.
    if (this.exit) for (const vcpu of this.vcpus) vcpu.stop();
    this.coalescedPio?.start();
    const haltWatch = new HaltWatch(this.vcpus, () => this.finish({ kind: 'halted' }));
    haltWatch.start();
    await Promise.all(runs);
    haltWatch.stop();
    const exit = this.exit ?? { kind: 'stopped', reason: 'vCPUs ended' };
    const errors = await this.close();
    if (this.failure) throw this.failure;
    if (errors.length > 0) this.logger.warn(`releasing the VM: ${errors.map(String).join('; ')}`);
    return exit;
  }

  /** Releases everything (vCPU threads, devices, memory, fds). run() does this itself. */
  async close(): Promise<unknown[]> {
    if (this.closed) return [];
    this.closed = true;
    return this.teardown.run();
  }

  private onExit(run: KvmRun, vcpu: MachineVcpu): 'stop' | void {
    // Posted writes that came before this access reach their devices first, as if each had exited.
    this.coalescedPio?.drain();
    if (this.exit) return 'stop';
    this.handled.all++;
    switch (run.exitReason) {
      case KvmExit.IO: {
        const io = run.io;
        this.handled.pio++;
        if (io.port >= COM1_PORT && io.port < COM1_PORT + UART_PORT_COUNT) this.handled.uart++;
        dispatchPio(this.pio, { port: io.port, size: io.size, count: io.count, isWrite: io.direction === 'out', data: io.data });
        break;
      }
      case KvmExit.MMIO: {
        const mmio = run.mmio;
        this.handled.mmio++;
        if (mmio.isWrite) this.mmio.write(mmio.physAddr, mmio.data);
        else this.mmio.read(mmio.physAddr, mmio.data);
        break;
      }
      case KvmExit.HLT: // only without an in-kernel LAPIC; the next KVM_RUN waits for an interrupt
      case KvmExit.INTR:
        break;
      case KvmExit.SHUTDOWN:
        this.finish({ kind: 'shutdown', vcpu: vcpu.id });
        break;
      case KvmExit.SYSTEM_EVENT:
        this.onSystemEvent(run, vcpu);
        break;
      case KvmExit.INTERNAL_ERROR:
        this.onInternalError(run, vcpu);
        break;
      default:
        this.finishWithError(vcpu, KvmInternalError.UNEXPECTED_EXIT_REASON, [BigInt(run.exitReason)]);
    }
    if (this.quirks.active && !this.exit) this.quirks.ensureSyscallTrap(() => vcpu.getSregs());
    return this.exit ? 'stop' : undefined;
  }

  private onSystemEvent(run: KvmRun, vcpu: MachineVcpu): void {
    const { type } = run.systemEvent;
    if (type === KvmSystemEvent.SHUTDOWN) this.finish({ kind: 'poweroff', status: 0 });
    else if (type === KvmSystemEvent.RESET) this.finish({ kind: 'reboot', source: 'system-event' });
    else this.finish({ kind: 'shutdown', vcpu: vcpu.id });
  }

  private onInternalError(run: KvmRun, vcpu: MachineVcpu): void {
    const { suberror, data, instructionBytes } = run.internalError;
    const regs = vcpu.getRegs();
    const sregs = vcpu.getSregs();
    const outcome = this.quirks.onEmulationFailure({
      suberror,
      regs,
      sregs,
      insnBytes: instructionBytes,
      readMsr: (index) => vcpu.getMsrs([index])[0].data,
    });
    if (!outcome.handled) {
      if (this.quirks.active) this.logger.debug(`vCPU ${vcpu.id}: host quirks: ${outcome.reason}`);
      this.finishWithError(vcpu, suberror, data, { regs, sregs, instructionBytes });
      return;
    }
    vcpu.setRegs(outcome.regs);
    if (outcome.sregs) vcpu.setSregs({ ...sregs, ...outcome.sregs } as Sregs);
    if (outcome.inject) {
      const events = vcpu.getVcpuEvents();
      events.exception = { ...events.exception, injected: 1, nr: outcome.inject.vector, hasErrorCode: 0, pending: 0, errorCode: 0 };
      vcpu.setVcpuEvents(events);
    }
  }

  private finishWithError(
    vcpu: MachineVcpu,
    suberror: number,
    data: bigint[],
    state?: { regs: Regs; sregs: Sregs; instructionBytes?: Uint8Array },
  ): void {
    const report = buildInternalErrorReport({
      suberror,
      data,
      ...(state?.instructionBytes ? { instructionBytes: state.instructionBytes } : {}),
      regs: state?.regs ?? vcpu.getRegs(),
      sregs: state?.sregs ?? vcpu.getSregs(),
      mem: this.memory,
    });
    this.finish({ kind: 'internal-error', vcpu: vcpu.id, report });
  }
}

