import { readFile } from 'node:fs/promises';
import { DEFAULT_MEM_MIB, type VmConfig } from '@hype/vm';
import { parseArgs } from './args.js';
import { loadConfigFile } from './config-file.js';
import { ConsoleBridge, type ConsoleInput } from './console-bridge.js';
import { decideExit, ExitCode, type StopCause, type StopSignal, type VmOutcome } from './exit-codes.js';
import { nodeFs, type HostFs } from './host-fs.js';
import { checkKvmDevice, kvmDevicePath } from './kvm-device.js';
import { mergeOptions, type LabelledOptions } from './options.js';
import type { CliVm, CreateVm, DefaultGuest } from './ports.js';
import { formatSize, MiB } from './size.js';
import { isUsageError, UsageError } from './usage-error.js';
import { checkInputs, checkMemoryFits, type InspectKernel } from './validate.js';

export interface OutputStream {
  write(text: string | Uint8Array): unknown;
}

/** Everything runCli touches outside itself, so tests can run it without a terminal, KVM or a guest build. */
export interface CliIo {
  stdin: ConsoleInput;
  stdout: OutputStream;
  stderr: OutputStream;
  env: Record<string, string | undefined>;
  createVm: CreateVm;
  guest: DefaultGuest;
  inspectKernel: InspectKernel;
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
}

const STOP_SIGNALS: StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function printError(io: CliIo, message: string): void {
  io.stderr.write(`hype: ${message}\n`);
}

/** Runs the `hype` command line; resolves to the process exit code. Never rejects. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const parsed = parseArgs(argv);
    if (isUsageError(parsed)) {
      printError(io, parsed.message);
      return ExitCode.usage;
    }
    switch (parsed.command) {
      case 'print':
        io.stdout.write(parsed.text);
        return ExitCode.ok;
      case 'guest-build':
        return await guestBuild(io);
      case 'run':
        return await run(parsed.flags, parsed.configFile, io);
    }
  } catch (error) {
    if (isUsageError(error)) {
      printError(io, error.message);
      return ExitCode.usage;
    }
    printError(io, `internal error: ${(error as Error)?.stack ?? String(error)}`);
    return ExitCode.internal;
  }
}

function progressPrinter(io: CliIo): (line: string) => void {
  return (line) => io.stderr.write(`hype: ${line}\n`);
}

async function guestBuild(io: CliIo): Promise<number> {
  try {
    const files = await io.guest.ensure(progressPrinter(io));
    io.stdout.write(`kernel: ${files.kernel}\ninitrd: ${files.initrd}\n`);
    return ExitCode.ok;
  } catch (error) {
    printError(io, `building the default guest failed: ${(error as Error).message}`);
    return ExitCode.guestFailure;
  }
}

async function run(flags: LabelledOptions, configFile: string | undefined, io: CliIo): Promise<number> {
  const fs = io.fs ?? nodeFs;
  const file = configFile === undefined ? undefined : await loadConfigFile(configFile, io.readTextFile ?? ((p) => readFile(p, 'utf8')));
  const { options, origins } = mergeOptions(file, flags);

  const warnings: string[] = [];
  const inputs = await checkInputs(options, origins, fs, io.inspectKernel, warnings);
  for (const warning of warnings) printError(io, `warning: ${warning}`);
  if (inputs.errors.length > 0) {
    for (const error of inputs.errors) printError(io, error);
    return ExitCode.usage;
  }

  const memMiB = options.memMiB ?? DEFAULT_MEM_MIB;
  if (io.totalMemBytes !== undefined && memMiB * MiB > io.totalMemBytes) {
    printError(io, `warning: --mem ${formatSize(memMiB * MiB)} is more than this host's RAM (${formatSize(Math.floor(io.totalMemBytes / MiB) * MiB)})`);
  }

  const kvmDevice = kvmDevicePath(io.env);
  const kvmProblem = await checkKvmDevice(kvmDevice, fs);
  if (kvmProblem) {
    printError(io, kvmProblem);
    return ExitCode.usage;
  }

  let kernel = options.kernel;
  let initrd = options.initrd;
  let kernelInfo = inputs.kernel;
  let initrdBytes = inputs.initrdBytes ?? 0;
  if (kernel === undefined) {
    let files;
    try {
      files = await io.guest.ensure(progressPrinter(io));
    } catch (error) {
      printError(io, `building the default guest failed: ${(error as Error).message}`);
      return ExitCode.guestFailure;
    }
    kernel = files.kernel;
    const defaults = await checkInputs(
      { kernel: files.kernel, ...(initrd === undefined ? { initrd: files.initrd } : {}) },
      { kernel: 'default guest kernel', initrd: 'default guest initrd' },
      fs,
      io.inspectKernel,
    );
    if (defaults.errors.length > 0) {
      for (const error of defaults.errors) printError(io, `internal error: ${error}`);
      return ExitCode.internal;
    }
    kernelInfo = defaults.kernel;
    if (initrd === undefined) {
      initrd = files.initrd;
      initrdBytes = defaults.initrdBytes ?? 0;
    }
  }
  if (kernelInfo) {
    const memLabel = origins.memMiB ?? 'guest memory (the default)';
    const tooSmall = checkMemoryFits(memMiB, memLabel, kernelInfo, initrdBytes);
    if (tooSmall) {
      printError(io, tooSmall);
      return ExitCode.usage;
    }
  }

  const config: VmConfig = {
    kernel,
    ...(initrd !== undefined ? { initrd } : {}),
    ...(options.cmdline !== undefined ? { cmdline: options.cmdline } : {}),
    memMiB,
    cpus: options.cpus ?? 1,
    disks: options.disks ?? [],
    console: options.console ?? 'hvc',
  };
  return runVm(config, kvmDevice, io);
}

/** Whether an error from createVm is about the user's input (exit 2) rather than a VMM failure (exit 5). */
export function isInputError(error: unknown): boolean {
  return isUsageError(error) || (error as { code?: unknown } | undefined)?.code === 'ERR_HYPE_INPUT';
}

async function runVm(config: VmConfig, kvmDevice: string, io: CliIo): Promise<number> {
  let vm: CliVm;
  let atLineStart = true;
  const consoleOutput = (bytes: Uint8Array) => {
    if (bytes.length === 0) return;
    atLineStart = bytes[bytes.length - 1] === 0x0a;
    io.stdout.write(bytes);
  };
  try {
    vm = await io.createVm(config, { consoleOutput, kvmDevice });
  } catch (error) {
    if (isInputError(error)) {
      printError(io, (error as Error).message);
      return ExitCode.usage;
    }
    printError(io, `internal error: cannot start the VM: ${(error as Error).message}`);
    return ExitCode.internal;
  }

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

  const bridge = new ConsoleBridge({
    input: io.stdin,
    toGuest: (bytes) => vm.writeConsole(bytes),
    onQuit: () => requestStop({ kind: 'quit-key' }),
    writeMessage: (text) => io.stderr.write(text),
    ...(io.registerCleanup ? { registerRestore: io.registerCleanup } : {}),
  });
  const unsubscribes = STOP_SIGNALS.map((signal) => io.onSignal(signal, () => requestStop({ kind: 'signal', signal })));
  let outcome: VmOutcome;
  try {
    bridge.start();
    outcome = await Promise.race([vm.run(), gaveUp]);
  } catch (error) {
    outcome = { kind: 'internal-error', message: (error as Error)?.stack ?? String(error) };
  } finally {
    if (stopTimer) clearTimeout(stopTimer);
    for (const unsubscribe of unsubscribes) unsubscribe();
    bridge.close();
  }
  const decision = decideExit(outcome, stopCause);
  if (decision.message) {
    // The guest's last line may be unfinished (a shell prompt): start the message on a line of its own.
    io.stderr.write(`${atLineStart ? '' : '\n'}hype: ${decision.message}\n`);
  }
  return decision.code;
}
