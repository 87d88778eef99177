import { buildAcpiTables } from '@hype/acpi';
import { AgentClient } from '@hype/guest-agent';
import { KvmCap, PioReadMirror, type ExitPollOptions, type Kvm, type Vcpu, type Vm } from '@hype/kvm';
import { type KernelImage, LAYOUT, LoaderError } from '@hype/linux-loader';
import { loadLinuxFiles } from '@hype/linux-loader/node';
import { ConsoleDevice, MMIO_WINDOW_SIZE, type VirtioDevice } from '@hype/virtio';
import { Bus, type ReadMirror } from '../bus.js';
import { CoalescedPio } from './coalesced-pio.js';
import { DEFAULT_MEM_MIB, MAX_CPUS, type VmConfig } from '../config.js';
import { ACPI_POWER_PORT, ACPI_RESET_VALUE, AcpiPowerPort } from '../devices/acpi-power.js';
import { DEBUG_PORT_BASE, DEBUG_PORT_COUNT, DebugPort } from '../devices/debug-port.js';
import { I8042, I8042_COMMAND_PORT, I8042_DATA_PORT } from '../devices/i8042.js';
import { COM1_IRQ, COM1_PORT, UART_PORT_COUNT, Uart8250 } from '../devices/uart8250.js';
import type { VmExit } from '../lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import { HostQuirks, type HostQuirkMode } from '../quirks/index.js';
import { baseCmdline, joinCmdline } from './cmdline.js';
import { ByteBatcher, InputQueue } from './console-io.js';
import { VmInputError } from './input-error.js';
import { openKvm } from './kvm-device.js';
import { Machine, type TimingEvent, type TimingEventName } from './machine.js';
import { PushSource } from './push-source.js';
import { allocateGuestRam } from './ram.js';
import { Teardown } from './teardown.js';
import { applyBootState, configureVcpu } from './vcpu-setup.js';
import { MAX_VIRTIO_DEVICES, VirtioSlots } from './virtio-slots.js';

/** KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR: 4 pages just below the BIOS area, as Firecracker. */
const TSS_ADDR = 0xfffb_d000;
const IDENTITY_MAP_ADDR = 0xfffb_c000;
const MiB = 1024 * 1024;

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
  /**
   * `config.kernel` as the caller has it already (e.g. it checked the kernel before building a VM with
   * `checkLinux`): `kernelFile(config.kernel)` of @hype/linux-loader/node, or the file's bytes. Not opened
   * again. Without it the file is opened by the loader: an ELF's segments go straight into guest RAM.
   */
  kernelImage?: KernelImage;
  /**
   * Answer the reads of device registers that have no side effect (8250 LSR, MSR, IIR, ...; i8042 status)
   * on the vCPU threads from values the device models publish, instead of an exit to JavaScript each
   * (PioReadMirror of @hype/kvm). Default true, unless the environment variable HYPE_PIO_READ_MIRROR is
   * `0` (to compare, e.g. in `pnpm bench cfloor`).
   */
  pioReadMirror?: boolean;
  /**
   * Let KVM queue the port writes device models say may arrive late (8250 THR writes while its transmit
   * interrupt is off: the kernel's console output) instead of exiting for each, and deliver them in
   * batches (KVM_CAP_COALESCED_PIO; see CoalescedPio). Default true when KVM has it, unless the environment
   * variable HYPE_COALESCED_PIO is `0`.
   */
  coalescedPio?: boolean;
  /**
   * Polling for the next exit on the JavaScript thread (@hype/kvm's ExitPollOptions; default: HYPE_EXIT_POLL
   * if set, else on where the host has a CPU to spare beside the vCPUs; see the README).
   */
  exitPoll?: ExitPollOptions;
}

/** What the build steps share: the config, the options, where undo steps go, how devices end the VM. */
interface BuildContext {
  readonly config: VmConfig;
  /** Without `kernelImage` (given to loadKernel alone: what the context reaches lives as long as the VM). */
  readonly options: Omit<VmRuntimeOptions, 'kernelImage'>;
  readonly logger: Logger;
  readonly teardown: Teardown;
  readonly timing: (event: TimingEventName, value?: number) => void;
  /** Ends the VM (power off, reset); a no-op until the Machine exists. */
  readonly finish: (exit: VmExit) => void;
  /** Ends the VM with a VMM-side failure that run() rejects with. */
  readonly fail: (error: unknown, reason: string) => void;
}

/**
 * Builds a VM from `config`: opens KVM, lays out guest RAM, plugs in the platform devices and the
 * virtio devices of `config.devices`, loads the kernel (and initrd, command line, boot tables) and
 * prepares the vCPUs. Call `run()` on the result.
 *
 * The VM owns the devices from here: it resets them and calls their `close()` when it is released, and
 * also when createVm fails. Errors that are the caller's to fix (no /dev/kvm, a bad kernel file, too
 * little memory, too many devices) are VmInputErrors with one-line messages; nothing stays open.
 */
export async function createVm(config: VmConfig, runtimeOptions: VmRuntimeOptions): Promise<Machine> {
  // The kernel's bytes are needed only to load it: the closures made below (device sinks, timing) live as
  // long as the VM and keep what they reach, and a 17 MiB vmlinux must not be part of that.
  const { kernelImage, ...options } = runtimeOptions;
  const devices = config.devices ?? [];
  const teardown = new Teardown();
  const closeDevices = once(async () => {
    for (const device of new Set(devices)) await device.close?.();
  });
  // Runs last if createVm fails early; in a built VM the same (idempotent) step runs before RAM goes.
  teardown.push(closeDevices);
  let machine: Machine | undefined;
  const context: BuildContext = {
    config,
    options,
    logger: options.logger ?? silentLogger,
    teardown,
    timing: (event, value) => {
      if (!options.onTiming) return;
      // Exit counts so far (boot markers and the end): where the boot's time goes.
      const exits = machine && (event === 'boot-marker' || event === 'exit') ? machine.exitCounts() : undefined;
      options.onTiming({ event, ms: performance.now(), ...(value !== undefined ? { value } : {}), ...(exits ? { exits } : {}) });
    },
    finish: (exit) => machine?.finish(exit),
    fail: (error, reason) => machine?.fail(error, reason),
  };
  try {
    checkConfig(config);
    checkDevices(devices, config.console);
    const { kvm, vm, pioReadMirror } = createVmWithRam(context);
    context.timing('vm-ram');
    const quirks = new HostQuirks(vm.memory, { mode: options.hostQuirks, logger: context.logger });
    if (quirks.active && kvm.checkExtension(KvmCap.EXIT_ON_EMULATION_FAILURE) > 0) {
      vm.enableCap(KvmCap.EXIT_ON_EMULATION_FAILURE, [1]);
    }
    const platform = attachPlatformDevices(context, vm, pioReadMirror);
    const virtio = attachVirtioDevices(context, vm, platform.mmio, devices);
    context.timing('vm-devices');
    teardown.push(closeDevices); // device I/O in flight drains while guest RAM is still mapped
    // The quirks layer merges its additions in (a value the user set wins; clearcpuid lists combine).
    const cmdline = quirks.cmdline(joinCmdline(baseCmdline(config.console), virtio.slots.slots.map((s) => s.cmdline).join(' '), config.cmdline));
    const boot = loadKernel(context, vm, virtio.slots, cmdline, kernelImage);
    context.timing('vm-loaded');
    const vcpus = createVcpus(config, kvm, vm, quirks);
    applyBootState(vcpus[0], boot.cpu);
    const coalescedPio = attachCoalescedRing(platform.coalescedPio, vm, vcpus[0], context.logger);
    machine = new Machine({
      memory: vm.memory,
      vcpus,
      pio: platform.pio,
      mmio: platform.mmio,
      ...(pioReadMirror ? { pioReadMirror } : {}),
      ...(coalescedPio ? { coalescedPio } : {}),
      ...(options.exitPoll ? { exitPoll: options.exitPoll } : {}),
      quirks,
      consoleInput: virtio.consoleInput ?? platform.serialInput,
      markers: platform.debugPort.markers,
      teardown,
      logger: context.logger,
      timing: context.timing,
      cmdline,
      ...(config.agent ? { agent: new AgentClient({ connect: config.agent, clientName: '@hype/vm' }) } : {}),
    });
    context.timing('vm-created');
    return machine;
  } catch (error) {
    await teardown.run();
    throw error;
  }
}

function checkConfig(config: VmConfig): void {
  if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > MAX_CPUS) {
    throw new VmInputError('config', `cpus ${config.cpus}: use a whole number from 1 to ${MAX_CPUS}`);
  }
  if (!Number.isInteger(config.memMiB) || config.memMiB < 1) {
    throw new VmInputError('config', `memory ${config.memMiB} MiB: use a whole number of MiB (default ${DEFAULT_MEM_MIB})`);
  }
}

function checkDevices(devices: readonly VirtioDevice[], console: VmConfig['console']): void {
  if (new Set(devices).size !== devices.length) {
    throw new VmInputError('device', 'the same device object is listed twice in devices (each needs its own instance)');
  }
  const room = MAX_VIRTIO_DEVICES - (console === 'hvc' ? 1 : 0);
  if (devices.length > room) {
    throw new VmInputError(
      'device',
      `${devices.length} virtio devices: at most ${room} (${MAX_VIRTIO_DEVICES} virtio-mmio slots${console === 'hvc' ? ', one taken by the virtio console' : ''})`,
    );
  }
}

/** Whether register reads are answered from the PioReadMirror (VmRuntimeOptions.pioReadMirror). */
function pioReadMirrorEnabled(options: VmRuntimeOptions): boolean {
  return options.pioReadMirror ?? process.env.HYPE_PIO_READ_MIRROR !== '0';
}

/**
 * Hands CoalescedPio the ring (read through the first vCPU's mmap). Posting is an optimisation: if the
 * ring cannot be read, the ports are unregistered (writes exit again) and the VM runs without it.
 */
function attachCoalescedRing(coalescedPio: CoalescedPio | undefined, vm: Vm, vcpu: Vcpu, logger: Logger): CoalescedPio | undefined {
  if (!coalescedPio) return undefined;
  try {
    coalescedPio.attach(vm.coalescedRing(vcpu));
    return coalescedPio;
  } catch (error) {
    coalescedPio.close();
    logger.warn(`posted port writes off: ${(error as Error).message}`);
    return undefined;
  }
}

/** Whether posted port writes go through KVM's coalesced ring (VmRuntimeOptions.coalescedPio, and KVM has it). */
function coalescedPioEnabled(options: VmRuntimeOptions, vm: Vm): boolean {
  if (!(options.coalescedPio ?? process.env.HYPE_COALESCED_PIO !== '0')) return false;
  return vm.checkExtension(KvmCap.COALESCED_PIO) > 0 && vm.checkExtension(KvmCap.COALESCED_MMIO) > 0;
}

/** The KVM and VM file descriptors, the in-kernel irqchip and PIT, guest RAM, and the read mirror. */
function createVmWithRam({ config, options, teardown }: BuildContext): { kvm: Kvm; vm: Vm; pioReadMirror: PioReadMirror | undefined } {
  const kvm = openKvm(options.kvmDevice ?? '/dev/kvm');
  teardown.push(() => kvm.close());
  // Unmapped after vm.close() (teardown runs in reverse) has ended the vCPU threads that read it.
  const pioReadMirror = pioReadMirrorEnabled(options) ? new PioReadMirror() : undefined;
  if (pioReadMirror) teardown.push(() => pioReadMirror.close());
  const vm = kvm.createVm();
  teardown.push(() => vm.close());
  vm.setTssAddr(TSS_ADDR);
  vm.setIdentityMapAddr(IDENTITY_MAP_ADDR);
  vm.createIrqchip();
  vm.createPit2({ speakerDummy: true });
  allocateGuestRam(vm, config.memMiB * MiB);
  return { kvm, vm, pioReadMirror };
}

/** The 8250 UART on COM1, the i8042 (for its reset line), hype's debug port and the ACPI power registers. */
function attachPlatformDevices({ config, options, logger, teardown, timing, finish, fail }: BuildContext, vm: Vm, pioReadMirror?: PioReadMirror) {
  const pio = new Bus('pio', logger);
  const mmio = new Bus('mmio', logger);
  const coalescedPio = coalescedPioEnabled(options, vm)
    ? new CoalescedPio(vm, pio, { warn: (m) => logger.warn(m), onError: (error) => fail(error, 'a device failed on a posted port write') })
    : undefined;
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
    ...(pioReadMirror ? { mirror: portMirror(pioReadMirror, COM1_PORT) } : {}),
    ...(coalescedPio ? { postedWrites: coalescedPio.forDevice(COM1_PORT) } : {}),
  });
  // Delivers what the guest posted last before the console's batcher flushes (teardown runs in reverse).
  if (coalescedPio) teardown.push(() => coalescedPio.close());
  const serialInput = new InputQueue((bytes) => uart.receive(bytes));
  pio.register(COM1_PORT, UART_PORT_COUNT, uart, 'serial (COM1)');
  const i8042 = new I8042({
    onReset: () => finish({ kind: 'reboot', source: 'i8042' }),
    setIrq: (irq, level) => vm.irqLine(irq, level),
    ...(pioReadMirror ? { statusMirror: portMirror(pioReadMirror, I8042_COMMAND_PORT) } : {}),
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
  return { pio, mmio, serialInput, debugPort, coalescedPio };
}

/**
 * The virtio console first (when it carries the console), then `devices` in order, each in its own
 * virtio-mmio slot: window, interrupt line (irqfd), queue notifications (ioeventfd), command-line and
 * ACPI entries, reset at teardown. The same path for hype's devices and anyone else's.
 */
function attachVirtioDevices({ config, options, logger, teardown }: BuildContext, vm: Vm, mmio: Bus, devices: readonly VirtioDevice[]) {
  const slots = new VirtioSlots(vm, mmio, vm.memory, { warn: (m) => logger.warn(m), debug: (m) => logger.debug(m) });
  teardown.push(() => slots.close());
  let consoleInput: PushSource | undefined;
  if (config.console === 'hvc') {
    consoleInput = new PushSource();
    const consoleDevice = new ConsoleDevice({
      sink: {
        write: (bytes) => (options.onConsoleDrain ? options.consoleOutput(bytes) !== false : (options.consoleOutput(bytes), true)),
        onDrain: (listener) => options.onConsoleDrain?.(listener),
      },
      source: consoleInput,
    });
    slots.add(consoleDevice);
  }
  for (const device of devices) slots.add(device);
  return { slots, consoleInput };
}

/** Kernel, initrd, command line and the boot tables (ACPI describes the same machine as the MP table). */
function loadKernel({ config, logger }: BuildContext, vm: Vm, slots: VirtioSlots, cmdline: string, kernelImage: KernelImage | undefined) {
  // Distribution kernels find virtio-mmio devices only through ACPI (their virtio_mmio lacks
  // VIRTIO_MMIO_CMDLINE_DEVICES) and power off through the S5 sleep register.
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
  let boot;
  try {
    boot = loadLinuxFiles(vm.memory, {
      kernelPath: config.kernel,
      ...(kernelImage ? { kernelImage } : {}),
      initrdPath: config.initrd,
      cmdline,
      memBytes: config.memMiB * MiB,
      cpus: config.cpus,
      acpi: { bytes: acpi.bytes, rsdpAddr: acpi.rsdpAddress },
    });
  } catch (error) {
    if (error instanceof LoaderError) throw new VmInputError('boot', error.message, { cause: error });
    throw error;
  }
  logger.debug(`kernel loaded (${boot.kernel.mode}) entry 0x${boot.kernel.entry.toString(16)}; cmdline: ${cmdline}`);
  return boot;
}

function createVcpus(config: VmConfig, kvm: Kvm, vm: Vm, quirks: HostQuirks): Vcpu[] {
  const supportedCpuid = kvm.supportedCpuid();
  const vcpus: Vcpu[] = [];
  for (let id = 0; id < config.cpus; id++) {
    const vcpu = vm.createVcpu(id);
    vcpus.push(vcpu);
    configureVcpu(vcpu, { vcpuCount: config.cpus, supportedCpuid, adjustCpuid: (entries) => quirks.cpuid(entries) });
  }
  return vcpus;
}

/** A device's ReadMirror at port `base` of the PioReadMirror. */
function portMirror(mirror: PioReadMirror, base: number): ReadMirror {
  return { publish: (offset, value) => void mirror.set(base + offset, value) };
}

function once(step: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= step());
}
