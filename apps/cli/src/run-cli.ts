import { lstatSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { KernelImage } from '@hype/linux-loader';
import { DEFAULT_MEM_MIB } from '@hype/vm';
import { chooseAccel, writableDiskDirs, type Accel, type AccelChoice } from './accel.js';
import { parseArgs, type ParsedArgs } from './args.js';
import { loadConfigFile } from './config-file.js';
import { ConsoleBridge, type ConsoleInput } from './console-bridge.js';
import { CommandExitCode, decideExit, ExitCode, SIGNAL_EXIT_CODES, type StopCause, type StopSignal, type VmOutcome } from './exit-codes.js';
import { nodeFs, type HostFs } from './host-fs.js';
import { checkKvmDevice, kvmDevicePath } from './kvm-device.js';
import { resolveNics } from './net-options.js';
import { mergeOptions } from './options.js';
import type { CliVm, CliVmConfig, CreateVm, DefaultGuest, NestedRig, TimingEventLike } from './ports.js';
import { ConsoleTail, runGuestCommand, type CommandInput } from './run-command.js';
import { formatSize, MiB } from './size.js';
import { isUsageError } from './usage-error.js';
import { bootProblem, checkInputs, type CheckBoot } from './validate.js';
import { logLevelFromEnv, stderrLogger, type LogLevel } from './vm-logger.js';
import { collectStartupGarbage } from './startup-garbage.js';

export interface OutputStream {
  /** Returns false when the stream's buffer is full ('drain' follows), like a Node Writable. */
  write(text: string | Uint8Array): unknown;
  on?(event: 'drain', listener: () => void): unknown;
  removeListener?(event: 'drain', listener: () => void): unknown;
}

/** Everything runCli touches outside itself, so tests can run it without a terminal, KVM or a guest build. */
export interface CliIo {
  /** A command (hype run -- CMD) also listens for 'end'. */
  stdin: ConsoleInput & Partial<Pick<CommandInput, 'on' | 'removeListener'>>;
  stdout: OutputStream;
  stderr: OutputStream;
  env: Record<string, string | undefined>;
  createVm: CreateVm;
  guest: DefaultGuest;
  /** Dry-runs the loader on the kernel, initrd size and memory (boot-check.ts). */
  checkBoot: CheckBoot;
  fs?: HostFs;
  readTextFile?: (path: string) => Promise<string>;
  /** Subscribes to a process signal; returns the unsubscribe function. */
  onSignal(signal: StopSignal, handler: () => void): () => void;
  /** Registers a function to run if the process exits abruptly (restores the terminal); returns unregister. */
  registerCleanup?(cleanup: () => void): () => void;
  /** Host RAM, for a warning when --mem exceeds it. */
  totalMemBytes?: number;
  /** How long to wait for the VM to stop after stop() before giving up on it (default 5000 ms). */
  stopTimeoutMs?: number;
  /** With a command: how long the guest gets to power off after it (default 30 000 ms). */
  powerOffTimeoutMs?: number;
  /**
   * Opens the KVM device and asks KVM_GET_API_VERSION; returns the one-line problem or undefined. Asked
   * after access(2) found the device usable; without it, only access(2) is checked.
   */
  probeKvm?: (path: string) => Promise<string | undefined>;
  /** The nested rig for --accel auto|nested; absent: nesting is not available. */
  nested?: NestedRig;
  /**
   * When the CLI's code started running, in `ms` since the process started (main() sets it first thing):
   * --timings prints it as the first event, `cli-start` (what came before it is Node's and the bundle's).
   */
  startedAtMs?: number;
  /** Called once a VM is built and about to start. */
  onVmStarted?(): void;
}

const STOP_SIGNALS: StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function printError(io: CliIo, message: string): void {
  io.stderr.write(`hype: ${message}\n`);
}

/** Runs the `hype` command line; resolves to the process exit code. Never rejects. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // With a command (`-- CMD`), the command's status is the exit code, so hype's own failures are 125.
  const ownCode = (code: number) => (argv.includes('--') ? commandModeCode(code) : code);
  try {
    const parsed = parseArgs(argv);
    if (isUsageError(parsed)) {
      printError(io, parsed.message);
      return ownCode(ExitCode.usage);
    }
    switch (parsed.command) {
      case 'print':
        io.stdout.write(parsed.text);
        return ExitCode.ok;
      case 'guest-build':
        return await guestBuild(io);
      case 'run': {
        const result = await run(parsed, io, argv);
        return typeof result === 'number' ? ownCode(result) : result.commandExit;
      }
    }
  } catch (error) {
    if (isUsageError(error)) {
      printError(io, error.message);
      return ownCode(ExitCode.usage);
    }
    printError(io, `internal error: ${(error as Error)?.stack ?? String(error)}`);
    return ownCode(ExitCode.internal);
  }
}

/** hype's own exit code in command mode: a stop by signal keeps its code, every other failure is 125. */
function commandModeCode(code: number): number {
  const signalCodes: number[] = Object.values(SIGNAL_EXIT_CODES);
  return code === ExitCode.ok || signalCodes.includes(code) ? code : CommandExitCode.hypeFailure;
}

/** The exit code of a command run in the guest (or of the inner hype in the rig): final as it is. */
interface CommandStatus {
  commandExit: number;
}

type RunParsed = Extract<ParsedArgs, { command: 'run' }>;

function progressPrinter(io: CliIo): (line: string) => void {
  return (line) => io.stderr.write(`hype: ${line}\n`);
}

async function guestBuild(io: CliIo): Promise<number> {
  try {
    const files = await io.guest.ensure(progressPrinter(io), true);
    io.stdout.write(`kernel: ${files.kernel}\ninitrd: ${files.initrd}\n`);
    return ExitCode.ok;
  } catch (error) {
    printError(io, `building the default guest failed: ${(error as Error).message}`);
    return ExitCode.guestFailure;
  }
}

async function run(parsed: RunParsed, io: CliIo, argv: readonly string[]): Promise<number | CommandStatus> {
  const { flags, configFile, accel, guestCommand, vsock } = parsed;
  const timings = parsed.timings === true;
  if (timings && io.startedAtMs !== undefined) printTiming(io, { event: 'cli-start', ms: io.startedAtMs });
  const fs = io.fs ?? nodeFs;
  const logLevel = logLevelFromEnv(io.env);
  const file = configFile === undefined ? undefined : await loadConfigFile(configFile, io.readTextFile);
  const { options, origins } = mergeOptions(file, flags);

  const nics = resolveNics(options.nets, options.mac, options.publish, origins);
  const warnings: string[] = [];
  const inputs = await checkInputs(options, origins, fs, warnings, nics.length, guestCommand !== undefined || vsock !== undefined);
  for (const warning of warnings) printError(io, `warning: ${warning}`);
  if (inputs.errors.length > 0) {
    for (const error of inputs.errors) printError(io, error);
    return ExitCode.usage;
  }
  const memMiB = options.memMiB ?? DEFAULT_MEM_MIB;
  const cpus = options.cpus ?? 1;
  const bootCheck: BootCheckFn = (kernelImage, kernelName, initrdBytes, initrdName) =>
    bootProblem(io.checkBoot, {
      kernel: kernelImage,
      kernelName,
      initrdBytes,
      ...(initrdName !== undefined ? { initrdName } : {}),
      memMiB,
      cpus,
      ...(options.cmdline !== undefined ? { cmdline: options.cmdline } : {}),
    });
  if (inputs.kernelImage && options.kernel !== undefined) {
    const problem = bootCheck(inputs.kernelImage, options.kernel, inputs.initrdBytes ?? 0, options.initrd);
    if (problem) {
      printError(io, problem.message);
      return ExitCode.usage;
    }
  }

  if (io.totalMemBytes !== undefined && memMiB * MiB > io.totalMemBytes) {
    printError(io, `warning: --mem ${formatSize(memMiB * MiB)} is more than this host's RAM (${formatSize(Math.floor(io.totalMemBytes / MiB) * MiB)})`);
  }

  // Where the VM runs is settled before any guest build starts.
  const kvmDevice = kvmDevicePath(io.env);
  const where = await chooseWhereToRun(accel, kvmDevice, fs, io);
  if (where.kind === 'unusable') {
    printError(io, where.message);
    return ExitCode.usage;
  }

  // kernelImage: the kernel as the checks opened it (a bzImage's bytes, read once; an ELF's file, whose
  // segments only the VM reads), handed to the VM.
  let boot: { kernel: string; initrd?: string; kernelImage?: KernelImage };
  if (options.kernel !== undefined) {
    boot = {
      kernel: options.kernel,
      ...(options.initrd !== undefined ? { initrd: options.initrd } : {}),
      ...(inputs.kernelImage ? { kernelImage: inputs.kernelImage } : {}),
    };
  } else {
    const resolved = await defaultGuestBoot(io, fs, options.initrd, inputs.initrdBytes, bootCheck);
    if (typeof resolved === 'number') return resolved;
    boot = resolved;
  }
  // From here the bytes live only in `boot` and then the VM config, which drops them once the VM is
  // built: a 17 MiB vmlinux must not stay resident for the VM's lifetime.
  inputs.kernelImage = undefined;

  if (where.kind === 'nested') {
    if (vsock !== undefined) {
      printError(io, `--vsock ${vsock}: the nested rig's VM is not reachable from this host; use --vsock where /dev/kvm works`);
      return ExitCode.usage;
    }
    // The rig's L1 has no network interface of its own: a user network there reaches L1 and nothing else.
    const tap = nics.find((nic) => nic.kind === 'tap');
    if (tap !== undefined) {
      printError(io, `${origins.nets ?? '--net'} tap=${tap.name}: the nested rig's VM cannot reach this host's TAP devices; use --net tap where /dev/kvm works`);
      return ExitCode.usage;
    }
    if (nics.some((nic) => nic.kind === 'user' && nic.publish.length > 0)) {
      printError(io, `${origins.publish ?? '--publish'}: ports of the nested rig's VM cannot be published on this host; use --publish where /dev/kvm works`);
      return ExitCode.usage;
    }
    if (nics.length > 0) printError(io, 'warning: --net user nested: the guest gets a network inside the rig only (DHCP, the rig\'s loopback at 10.0.2.2), nothing beyond it');
    const writable = (options.disks ?? []).flatMap((d) => (d.kind === 'file' && !d.readOnly ? [resolve(d.path)] : []));
    const awkward = writable.find((path) => /[\s,:]/.test(path));
    if (awkward !== undefined) {
      printError(io, `--disk ${awkward}: the nested rig cannot share a path with spaces, commas or colons; move or link the file`);
      return ExitCode.usage;
    }
    printError(io, where.notice);
    const code = await runNested(io.nested!, argv, writable, io, guestCommand !== undefined);
    return guestCommand !== undefined ? { commandExit: code } : code;
  }

  // A command's run prints nothing of the console unless the VM fails, so the kernel may be quiet.
  const cmdline = guestCommand !== undefined ? [GUEST_COMMAND_CMDLINE, options.cmdline].filter((c) => c !== undefined).join(' ') : options.cmdline;
  const config: CliVmConfig = {
    ...boot,
    ...(cmdline !== undefined ? { cmdline } : {}),
    memMiB,
    cpus,
    disks: options.disks ?? [],
    rng: options.rng ?? true,
    nics,
    console: options.console ?? 'hvc',
    ...(guestCommand !== undefined ? { agent: true } : {}),
    ...(vsock !== undefined ? { vsockSocket: resolve(vsock) } : {}),
  };
  delete boot.kernelImage;
  // The bridge removes its socket when the VM ends; this covers hype giving up on a VM that did not end,
  // and an abrupt exit.
  const removeSocket = config.vsockSocket !== undefined ? removeSocketFile(config.vsockSocket) : () => {};
  const unregister = config.vsockSocket !== undefined ? io.registerCleanup?.(removeSocket) : undefined;
  try {
    if (guestCommand !== undefined) return await runCommandVm(config, guestCommand, kvmDevice, logLevel, io, timings);
    return await runVm(config, kvmDevice, logLevel, io, timings);
  } finally {
    removeSocket();
    unregister?.();
  }
}

/** A cleanup that removes the Unix socket at `path` if one is still there (never another kind of file). */
function removeSocketFile(path: string): () => void {
  return () => {
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // already gone
    }
  };
}

/** A --timings line: `hype-timing {"event":...,"ms":...}` on stderr. */
function printTiming(io: CliIo, event: TimingEventLike): void {
  io.stderr.write(`hype-timing ${JSON.stringify(event)}\n`);
}

/** Prepended to the kernel command line of `hype run -- CMD` (a user's --cmdline comes after it and wins). */
const GUEST_COMMAND_CMDLINE = 'quiet';

async function chooseWhereToRun(accel: Accel, kvmDevice: string, fs: HostFs, io: CliIo): Promise<AccelChoice> {
  // access(2) first (its messages say what to do), then the device itself (KVM_GET_API_VERSION).
  const kvmProblem =
    accel === 'nested' ? undefined : ((await checkKvmDevice(kvmDevice, fs)) ?? (io.probeKvm ? await io.probeKvm(kvmDevice) : undefined));
  const needRig = accel === 'nested' || (accel === 'auto' && kvmProblem !== undefined);
  const rigProblem = needRig ? (io.nested ? io.nested.problem() : 'this hype cannot nest (no rig)') : undefined;
  return chooseAccel(accel, kvmProblem, rigProblem);
}

/**
 * The same command again inside the nested rig, with --accel kvm; the default guest was built here
 * already, so the inner hype finds it in the cache. Writable disk files are shared read-write.
 */
async function runNested(rig: NestedRig, argv: readonly string[], writable: readonly string[], io: CliIo, command: boolean): Promise<number> {
  // Ctrl-C without a terminal reaches the rig too (same process group): wait for its exit status.
  const unsubscribes = STOP_SIGNALS.map((signal) => io.onSignal(signal, () => {}));
  try {
    const code = await rig.run(withAccelKvm(argv), writableDiskDirs(writable, dirname));
    // With a command, 125 is hype's failure whether the rig or the inner hype failed (each said why).
    if (command) return code;
    if (code === RIG_FAILED) printError(io, 'the nested rig failed (see the message above)');
    return code === RIG_FAILED ? ExitCode.internal : code;
  } finally {
    for (const unsubscribe of unsubscribes) unsubscribe();
  }
}

/** argv with `--accel kvm` added, before a guest command's `--` (the last --accel wins). */
export function withAccelKvm(argv: readonly string[]): string[] {
  const end = argv.indexOf('--');
  return end < 0 ? [...argv, '--accel', 'kvm'] : [...argv.slice(0, end), '--accel', 'kvm', ...argv.slice(end)];
}

/** kvm-in-qemu.sh's status for its own failures (the command's status passes through otherwise). */
const RIG_FAILED = 125;

type BootCheckFn = (kernelImage: KernelImage, kernelName: string, initrdBytes: number, initrdName: string | undefined) =>
  ReturnType<typeof bootProblem>;

/**
 * The default guest's kernel (and initrd, unless the user gave one), built first if not cached and put
 * through the boot check. Returns the files, or the exit code after printing why not.
 */
async function defaultGuestBoot(
  io: CliIo,
  fs: HostFs,
  userInitrd: string | undefined,
  userInitrdBytes: number | undefined,
  bootCheck: BootCheckFn,
): Promise<{ kernel: string; initrd: string; kernelImage: KernelImage } | number> {
  let files;
  try {
    files = await io.guest.ensure(progressPrinter(io));
  } catch (error) {
    printError(io, `building the default guest failed: ${(error as Error).message}`);
    return ExitCode.guestFailure;
  }
  const checked = await checkInputs(
    { kernel: files.kernel, ...(userInitrd === undefined ? { initrd: files.initrd } : {}) },
    { kernel: 'default guest kernel', initrd: 'default guest initrd' },
    fs,
  );
  if (checked.errors.length > 0 || !checked.kernelImage) {
    for (const error of checked.errors) printError(io, `internal error: ${error}`);
    return ExitCode.internal;
  }
  const initrd = userInitrd ?? files.initrd;
  const initrdBytes = (userInitrd === undefined ? checked.initrdBytes : userInitrdBytes) ?? 0;
  const problem = bootCheck(checked.kernelImage, files.kernel, initrdBytes, initrd);
  if (problem) {
    // Too little memory or too long a command line is the user's to fix; anything else is our guest's fault.
    const usersToFix = problem.kind === 'memory' || problem.kind === 'cmdline';
    printError(io, usersToFix ? problem.message : `internal error: the default guest: ${problem.message}`);
    return usersToFix ? ExitCode.usage : ExitCode.internal;
  }
  return { kernel: files.kernel, initrd, kernelImage: checked.kernelImage };
}

/**
 * Whether an error from createVm is about the user's input (exit 2) rather than a VMM failure (exit 5):
 * CreateVm wraps every input error (@hype/vm's VmInputError, a disk that does not open) in a UsageError.
 */
export function isInputError(error: unknown): boolean {
  return isUsageError(error);
}

/** Builds the VM for `hype run -- CMD` and runs the command (run-command.ts). */
async function runCommandVm(
  config: CliVmConfig,
  spec: NonNullable<RunParsed['guestCommand']>,
  kvmDevice: string,
  logLevel: LogLevel,
  io: CliIo,
  timings: boolean,
): Promise<number | CommandStatus> {
  const tail = new ConsoleTail();
  const created = await createCliVm(config, io, kvmDevice, logLevel, timings, {
    consoleOutput: (bytes) => {
      tail.push(bytes);
      return true;
    },
    onConsoleDrain: () => {},
  });
  if (typeof created === 'number') return created;
  const input = io.stdin as unknown as CommandInput;
  const commandExit = await runGuestCommand(
    created,
    spec,
    {
      stdin: input,
      stdout: io.stdout as CommandOutputStream,
      stderr: io.stderr as CommandOutputStream,
      report: (message) => printError(io, message),
      onSignal: io.onSignal,
      ...(io.stopTimeoutMs !== undefined ? { stopTimeoutMs: io.stopTimeoutMs } : {}),
      ...(io.powerOffTimeoutMs !== undefined ? { powerOffTimeoutMs: io.powerOffTimeoutMs } : {}),
    },
    tail,
  );
  return { commandExit };
}

type CommandOutputStream = OutputStream & { once?(event: 'drain', listener: () => void): unknown };

/** io.createVm with the CLI's logger and timings; on failure prints why and returns the exit code. */
async function createCliVm(
  config: CliVmConfig,
  io: CliIo,
  kvmDevice: string,
  logLevel: LogLevel,
  timings: boolean,
  console: { consoleOutput(bytes: Uint8Array): boolean; onConsoleDrain(listener: () => void): void },
  rawConsole: () => boolean = () => false,
): Promise<CliVm | number> {
  const logger = stderrLogger((text) => io.stderr.write(text), logLevel, rawConsole);
  try {
    // --timings: one line per event, `ms` since the process started (performance.timeOrigin); `vm-create`
    // when the inputs are checked and the VM is asked for.
    const onTiming = timings ? (event: TimingEventLike) => printTiming(io, event) : undefined;
    onTiming?.({ event: 'vm-create', ms: performance.now() });
    const vm = await io.createVm(config, { ...console, kvmDevice, logger, ...(onTiming ? { onTiming } : {}) });
    delete config.kernelImage; // loaded into guest RAM; not needed again
    io.onVmStarted?.();
    // After the caller has started the VM (this turn), start-up's garbage goes: see collectStartupGarbage.
    setTimeout(collectStartupGarbage, 0).unref();
    return vm;
  } catch (error) {
    if (isInputError(error)) {
      printError(io, (error as Error).message);
      return ExitCode.usage;
    }
    printError(io, `internal error: cannot start the VM: ${(error as Error).message}`);
    return ExitCode.internal;
  }
}

async function runVm(config: CliVmConfig, kvmDevice: string, logLevel: LogLevel, io: CliIo, timings: boolean): Promise<number> {
  let atLineStart = true;
  const consoleOutput = (bytes: Uint8Array): boolean => {
    if (bytes.length === 0) return true;
    atLineStart = bytes[bytes.length - 1] === 0x0a;
    return io.stdout.write(bytes) !== false;
  };
  const drainListeners: (() => void)[] = [];
  const onConsoleDrain = (listener: () => void) => {
    if (!io.stdout.on) return;
    io.stdout.on('drain', listener);
    drainListeners.push(listener);
  };
  const removeDrainListeners = () => {
    for (const listener of drainListeners.splice(0)) io.stdout.removeListener?.('drain', listener);
  };
  let bridge: ConsoleBridge | undefined;
  const created = await createCliVm(config, io, kvmDevice, logLevel, timings, { consoleOutput, onConsoleDrain }, () => bridge?.isRaw === true);
  if (typeof created === 'number') {
    removeDrainListeners();
    return created;
  }
  const vm = created;

  let stopCause: StopCause | undefined;
  let giveUp: (outcome: VmOutcome) => void = () => {};
  const gaveUp = new Promise<VmOutcome>((resolve) => {
    giveUp = resolve;
  });
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const stopTimeoutMs = io.stopTimeoutMs ?? 5000;
  const requestStop = (cause: StopCause) => {
    if (stopCause) {
      // A second signal while stopping: do not wait for the VM any longer.
      giveUp({ kind: 'stopped' });
      return;
    }
    stopCause = cause;
    vm.stop();
    stopTimer = setTimeout(() => {
      printError(io, `the VM did not stop within ${stopTimeoutMs} ms; exiting anyway`);
      giveUp({ kind: 'stopped' });
    }, stopTimeoutMs);
    stopTimer.unref?.();
  };

  const unsubscribes = STOP_SIGNALS.map((signal) => io.onSignal(signal, () => requestStop({ kind: 'signal', signal })));
  let outcome: VmOutcome;
  try {
    const running = vm.run();
    // The console's input once the vCPUs run: process.stdin (a terminal's or a pipe's stream, and the
    // modules behind it) is then made beside the guest's boot, not before it.
    bridge = new ConsoleBridge({
      input: io.stdin,
      toGuest: (bytes) => vm.writeConsole(bytes),
      onQuit: () => requestStop({ kind: 'quit-key' }),
      writeMessage: (text) => io.stderr.write(text),
      ...(io.registerCleanup ? { registerRestore: io.registerCleanup } : {}),
    });
    bridge.start();
    outcome = await Promise.race([running, gaveUp]);
  } catch (error) {
    outcome = { kind: 'internal-error', message: (error as Error)?.stack ?? String(error) };
  } finally {
    if (stopTimer) clearTimeout(stopTimer);
    for (const unsubscribe of unsubscribes) unsubscribe();
    bridge?.close();
    removeDrainListeners();
  }
  const decision = decideExit(outcome, stopCause);
  if (decision.message) {
    // The guest's last line may be unfinished (a shell prompt): start the message on a line of its own.
    io.stderr.write(`${atLineStart ? '' : '\n'}hype: ${decision.message}\n`);
    if (decision.detail) io.stderr.write(`${decision.detail}\n`);
  }
  return decision.code;
}
