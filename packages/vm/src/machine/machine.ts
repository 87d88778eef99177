import { Kvm, KvmCap, KvmError, KvmExit, KvmSystemEvent, type KvmRun, type Sregs, type Vcpu, type Vm } from '@hype/kvm';
import { loadLinuxFiles } from '@hype/linux-loader/node';
import { ConsoleDevice, MMIO_WINDOW_SIZE, type ConsoleSource } from '@hype/virtio';
import type { VirtioBlkDevice } from '@hype/virtio-blk';
import { openDiskDevice } from '@hype/virtio-blk/node';
import { Bus, dispatchPio } from '../bus.js';
import { DEFAULT_MEM_MIB, MAX_CPUS, type VmConfig } from '../config.js';
import { buildAcpiTables } from '@hype/acpi';
import { LAYOUT } from '@hype/linux-loader';
import { HaltWatch } from './halt-watch.js';
import { ACPI_POWER_PORT, ACPI_RESET_VALUE, AcpiPowerPort } from '../devices/acpi-power.js';
import { DEBUG_PORT_BASE, DEBUG_PORT_COUNT, DebugPort, type BootMarker } from '../devices/debug-port.js';
import { I8042, I8042_COMMAND_PORT, I8042_DATA_PORT } from '../devices/i8042.js';
import { COM1_IRQ, COM1_PORT, UART_PORT_COUNT, Uart8250 } from '../devices/uart8250.js';
import { InternalErrorKind, buildInternalErrorReport, type VmExit } from '../lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import { HostQuirks, type HostQuirkMode } from '../quirks/index.js';
import { baseCmdline, joinCmdline } from './cmdline.js';
import { ByteBatcher, InputQueue } from './console-io.js';
import { VmInputError } from './input-error.js';
import { allocateGuestRam } from './ram.js';
import { applyBootState, configureVcpu } from './vcpu-setup.js';
import { VirtioSlots } from './virtio-slots.js';

/** KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR: 4 pages just below the BIOS area, as Firecracker. */
const TSS_ADDR = 0xfffb_d000;
const IDENTITY_MAP_ADDR = 0xfffb_c000;
const MiB = 1024 * 1024;

export type TimingEventName = 'vm-created' | 'first-kvm-run' | 'boot-marker' | 'exit';

export interface TimingEvent {
  event: TimingEventName;
  /** Milliseconds since the process started (`performance.now()`). */
  ms: number;
  /** The marker value of a boot-marker event. */
  value?: number;
}

export interface VmRuntimeOptions {
  /**
   * Every byte the guest writes to its console (hvc0 or ttyS0, per `config.console`). Returning false
   * asks the console to hold further output until the listener given to `onConsoleDrain` runs.
   */
  consoleOutput(bytes: Uint8Array): boolean | void;
  /** Registers the listener for "console output can flow again" (e.g. a stream's 'drain'). */
  onConsoleDrain?(listener: () => void): void;
  /** The KVM device. Default /dev/kvm. */
  kvmDevice?: string;
  logger?: Logger;
  /** Host-quirk layer: 'auto' (default: on when KVM is kvm_pvm), 'pvm' (force) or 'off'. */
  hostQuirks?: HostQuirkMode;
  /** Boot-timing events (VM created, first KVM_RUN, guest markers on port 0xf5, exit). */
  onTiming?(event: TimingEvent): void;
}

function checkConfig(config: VmConfig): void {
  if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > MAX_CPUS) {
    throw new RangeError(`cpus ${config.cpus}: use a whole number from 1 to ${MAX_CPUS}`);
  }
  if (!Number.isInteger(config.memMiB) || config.memMiB < 1) {
    throw new RangeError(`memory ${config.memMiB} MiB: use a whole number of MiB (default ${DEFAULT_MEM_MIB})`);
  }
}

/** Undo steps run in reverse order, each at most once, errors collected rather than stopping the rest. */
class Teardown {
  private readonly steps: (() => void | Promise<void>)[] = [];
  push(step: () => void | Promise<void>): void {
    this.steps.push(step);
  }
  async run(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    return errors;
  }
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

  /** @internal use createVm() */
  constructor(
    private readonly vm: Vm,
    private readonly vcpus: Vcpu[],
    private readonly pio: Bus,
    private readonly mmio: Bus,
    private readonly quirks: HostQuirks,
    private readonly debugPort: DebugPort,
    private readonly input: { write(bytes: Uint8Array): void },
    private readonly teardown: Teardown,
    private readonly logger: Logger,
    private readonly timing: (event: TimingEventName, value?: number) => void,
    cmdline: string,
  ) {
    this.markers = debugPort.markers;
    this.hostQuirks = quirks;
    this.cmdline = cmdline;
  }

  /** Bytes for the guest console (buffered until the guest reads them). */
  writeConsole(bytes: Uint8Array): void {
    if (!this.closed) this.input.write(bytes);
  }

  /** Ends the VM from the host side: run() resolves { kind: 'stopped', reason }. Idempotent. */
  stop(reason = 'stopped by the host'): void {
    this.finish({ kind: 'stopped', reason });
  }

  /** @internal devices end the VM through this (power off, reset). */
  finish(exit: VmExit): void {
    if (this.exit) return;
    this.exit = exit;
    this.timing('exit');
    for (const vcpu of this.vcpus) vcpu.stop();
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
    const runs = this.vcpus.map((vcpu) =>
      vcpu
        .start((run, v) => this.onExit(run, v))
        .catch((error: unknown) => {
          this.failure ??= error;
          this.finish({ kind: 'stopped', reason: `vCPU ${vcpu.id} failed` });
        }),
    );
    // A stop() before run() started the threads: they still start, and stop at their first exit.
    if (this.exit) for (const vcpu of this.vcpus) vcpu.stop();
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

  private onExit(run: KvmRun, vcpu: Vcpu): 'stop' | void {
    if (this.exit) return 'stop';
    switch (run.exitReason) {
      case KvmExit.IO: {
        const io = run.io;
        dispatchPio(this.pio, { port: io.port, size: io.size, count: io.count, isWrite: io.direction === 'out', data: io.data });
        break;
      }
      case KvmExit.MMIO: {
        const mmio = run.mmio;
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
        this.finishWithError(vcpu, InternalErrorKind.UNEXPECTED_EXIT_REASON, [BigInt(run.exitReason)]);
    }
    if (this.quirks.active && !this.exit) this.quirks.ensureSyscallTrap(() => vcpu.getSregs());
    return this.exit ? 'stop' : undefined;
  }

  private onSystemEvent(run: KvmRun, vcpu: Vcpu): void {
    const { type } = run.systemEvent;
    if (type === KvmSystemEvent.SHUTDOWN) this.finish({ kind: 'poweroff', status: 0 });
    else if (type === KvmSystemEvent.RESET) this.finish({ kind: 'reboot', source: 'system-event' });
    else this.finish({ kind: 'shutdown', vcpu: vcpu.id });
  }

  private onInternalError(run: KvmRun, vcpu: Vcpu): void {
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
      this.finishWithError(vcpu, suberror, data, { regs, sregs });
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

  private finishWithError(vcpu: Vcpu, suberror: number, data: bigint[], state?: { regs: ReturnType<Vcpu['getRegs']>; sregs: Sregs }): void {
    const report = buildInternalErrorReport({
      suberror,
      data,
      regs: state?.regs ?? vcpu.getRegs(),
      sregs: state?.sregs ?? vcpu.getSregs(),
      mem: this.vm.memory,
    });
    this.finish({ kind: 'internal-error', vcpu: vcpu.id, report });
  }
}

/**
 * Builds a VM from `config`: opens KVM, lays out guest RAM, loads the kernel (and initrd, command
 * line, boot tables), plugs in the devices and prepares the vCPUs. Call `run()` on the result.
 * Errors (a bad kernel file, too little memory, no /dev/kvm) are thrown with one-line messages and
 * leave nothing open.
 */
export async function createVm(config: VmConfig, options: VmRuntimeOptions): Promise<Machine> {
  checkConfig(config);
  const logger = options.logger ?? silentLogger;
  const timing = (event: TimingEventName, value?: number) =>
    options.onTiming?.({ event, ms: performance.now(), ...(value !== undefined ? { value } : {}) });
  const teardown = new Teardown();
  let machine: Machine | undefined;
  const finish = (exit: VmExit) => machine?.finish(exit);
  try {
    const kvm = openKvm(options.kvmDevice ?? '/dev/kvm');
    teardown.push(() => kvm.close());
    const vm = kvm.createVm();
    teardown.push(() => vm.close());
    vm.setTssAddr(TSS_ADDR);
    vm.setIdentityMapAddr(IDENTITY_MAP_ADDR);
    vm.createIrqchip();
    vm.createPit2({ speakerDummy: true });
    const memBytes = config.memMiB * MiB;
    allocateGuestRam(vm, memBytes);
    const quirks = new HostQuirks(vm.memory, { mode: options.hostQuirks, logger });
    if (quirks.active && kvm.checkExtension(KvmCap.EXIT_ON_EMULATION_FAILURE) > 0) {
      vm.enableCap(KvmCap.EXIT_ON_EMULATION_FAILURE, [1]);
    }

    const pio = new Bus('pio', logger);
    const mmio = new Bus('mmio', logger);

    // Legacy devices.
    // Serial output is bounded like the virtio console's: a full sink keeps the UART's THR full.
    const consoleOut = new ByteBatcher((bytes) => options.consoleOutput(bytes) !== false || !options.onConsoleDrain, {
      onReady: () => uart.transmitterReady(),
      warn: (message) => logger.warn(message),
    });
    teardown.push(() => consoleOut.close());
    if (config.console === 'serial') options.onConsoleDrain?.(() => consoleOut.sinkDrained());
    const uart = new Uart8250({
      output: (byte) => (config.console === 'serial' ? consoleOut.push(byte) : undefined),
      setIrq: (level) => vm.irqLine(COM1_IRQ, level),
      onRxDrained: () => serialInput.feed(),
    });
    const serialInput = new InputQueue((bytes) => uart.receive(bytes));
    pio.register(COM1_PORT, UART_PORT_COUNT, uart, 'serial (COM1)');
    const i8042 = new I8042({
      onReset: () => finish({ kind: 'reboot', source: 'i8042' }),
      setIrq: (irq, level) => vm.irqLine(irq, level),
    });
    pio.register(I8042_DATA_PORT, 1, i8042.data, 'i8042 data');
    pio.register(I8042_COMMAND_PORT, 1, i8042.command, 'i8042 command');
    const debugPort = new DebugPort({
      onPowerOff: (status) => finish({ kind: 'poweroff', status }),
      onMarker: (marker) => timing('boot-marker', marker.value),
    });
    pio.register(DEBUG_PORT_BASE, DEBUG_PORT_COUNT, debugPort, 'hype debug port');
    const acpiPower = new AcpiPowerPort({
      onPowerOff: () => finish({ kind: 'poweroff', status: 0 }),
      onReset: () => finish({ kind: 'reboot', source: 'acpi' }),
    });
    pio.register(ACPI_POWER_PORT, 1, acpiPower, 'ACPI sleep/reset registers');

    // virtio devices: the console first (when it carries the console), then the disks in order.
    const slots = new VirtioSlots(vm, mmio, vm.memory, { warn: (m) => logger.warn(m), debug: (m) => logger.debug(m) });
    teardown.push(() => slots.close());
    let input: { write(bytes: Uint8Array): void } = serialInput;
    if (config.console === 'hvc') {
      const source = new PushSource();
      const consoleDevice = new ConsoleDevice({
        sink: {
          write: (bytes) => (options.onConsoleDrain ? options.consoleOutput(bytes) !== false : (options.consoleOutput(bytes), true)),
          onDrain: (listener) => options.onConsoleDrain?.(listener),
        },
        source,
      });
      slots.add('virtio-console', consoleDevice);
      input = source;
    }
    const disks: VirtioBlkDevice[] = [];
    teardown.push(async () => {
      for (const disk of disks) await disk.close();
    });
    for (const [index, disk] of config.disks.entries()) {
      const device = await openDiskDevice(disk, index).catch((error: unknown) => {
        throw new VmInputError((error as Error).message, { cause: error });
      });
      disks.push(device);
      slots.add(`virtio-blk ${index} (/dev/vd${String.fromCharCode(97 + index)})`, device);
    }

    // The quirks layer merges its additions in (a value the user set wins; clearcpuid lists combine).
    const cmdline = quirks.cmdline(joinCmdline(baseCmdline(config.console), slots.slots.map((s) => s.cmdline).join(' '), config.cmdline));
    // ACPI describes the same machine as the MP table and the command line, for kernels that only look
    // there (distribution kernels: virtio_mmio without VIRTIO_MMIO_CMDLINE_DEVICES; poweroff via S5).
    const acpi = buildAcpiTables({
      base: LAYOUT.acpiTables,
      cpus: config.cpus,
      virtioMmio: slots.slots.map((slot) => ({ base: slot.base, size: MMIO_WINDOW_SIZE, irq: slot.irq })),
      serial: { port: COM1_PORT, irq: COM1_IRQ },
      i8042: true,
      sleepControlPort: ACPI_POWER_PORT,
      reset: { port: ACPI_POWER_PORT, value: ACPI_RESET_VALUE },
      irq0Gsi: 0, // KVM's IOAPIC routes ISA IRQ n to pin n, as the MP table says
    });
    const boot = loadLinuxFiles(vm.memory, {
      kernelPath: config.kernel,
      initrdPath: config.initrd,
      cmdline,
      memBytes,
      cpus: config.cpus,
      acpi: { bytes: acpi.bytes, rsdpAddr: acpi.rsdpAddress },
    });
    logger.debug(`kernel loaded (${boot.kernel.mode}) entry 0x${boot.kernel.entry.toString(16)}; cmdline: ${cmdline}`);

    const supportedCpuid = kvm.supportedCpuid();
    const vcpus: Vcpu[] = [];
    for (let id = 0; id < config.cpus; id++) {
      const vcpu = vm.createVcpu(id);
      vcpus.push(vcpu);
      configureVcpu(vcpu, { vcpuCount: config.cpus, supportedCpuid, adjustCpuid: (entries) => quirks.cpuid(entries) });
    }
    applyBootState(vcpus[0], boot.cpu);

    machine = new Machine(vm, vcpus, pio, mmio, quirks, debugPort, input, teardown, logger, timing, cmdline);
    timing('vm-created');
    return machine;
  } catch (error) {
    await teardown.run();
    throw error;
  }
}

/**
 * Whether `path` is a KVM device this process can use: it opens read-write and answers
 * KVM_GET_API_VERSION with the supported version. Returns the one-line problem, or undefined.
 */
export function probeKvmDevice(path = '/dev/kvm'): string | undefined {
  try {
    openKvm(path).close();
    return undefined;
  } catch (error) {
    if (error instanceof VmInputError) return error.message;
    return `${path}: ${(error as Error).message}`;
  }
}

/** Kvm.open, with a missing, inaccessible or non-KVM device reported as the user's input error. */
function openKvm(path: string): Kvm {
  try {
    return Kvm.open(path);
  } catch (error) {
    if (!(error instanceof KvmError)) {
      // Kvm's constructor throws a plain Error for an unsupported API version.
      if (error instanceof Error && error.message.startsWith('KVM API version')) {
        throw new VmInputError(`${path}: ${error.message}`, { cause: error });
      }
      throw error;
    }
    const message = error.operation.startsWith('open') ? error.message : `${path} is not a KVM device (${error.message})`;
    throw new VmInputError(message, { cause: error });
  }
}

/** Host input for the virtio console: what the CLI writes, delivered while the device is not paused. */
class PushSource implements ConsoleSource {
  private listener: ((bytes: Uint8Array) => void) | undefined;
  private paused = false;
  private readonly pending: Uint8Array[] = [];

  onData(listener: (bytes: Uint8Array) => void): void {
    this.listener = listener;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    while (!this.paused && this.pending.length > 0) this.listener?.(this.pending.shift()!);
  }
  write(bytes: Uint8Array): void {
    if (this.paused || !this.listener) this.pending.push(bytes.slice());
    else this.listener(bytes);
  }
}
