import type { KernelImage } from '@hype/linux-loader';
import type { DiskSpec } from '@hype/virtio-blk/node';
import type { VmConfig } from '@hype/vm';
import type { VmOutcome } from './exit-codes.js';
import type { CliNic } from './net-options.js';

/** A VM as the CLI drives it. `defaultCreateVm` (vm-adapter.ts) builds one with @hype/vm. */
export interface CliVm {
  /** Runs the guest until it stops or stop() is called; the VM's resources are released when it resolves. */
  run(): Promise<VmOutcome>;
  /** Bytes typed on the terminal, for the guest console (buffered until the guest reads them). */
  writeConsole(bytes: Uint8Array): void;
  /** Asks the VM to stop (from a signal handler or Ctrl-A x): run() then resolves { kind: 'stopped' }. Idempotent. */
  stop(): void;
  /** The guest agent, when the config asked for it (`agent: true`). */
  agent?: CliAgent;
}

/** A command running in the guest (@hype/guest-agent's AgentProcess, as far as the CLI uses it). */
export interface GuestCommand {
  readonly stdin: { write(bytes: Uint8Array): boolean; end(): void; onDrain(callback: () => void): unknown } | null;
  readonly stdout: AsyncIterable<Uint8Array>;
  readonly stderr: AsyncIterable<Uint8Array>;
  /** Resolves with the exit status or signal; rejects with an AgentError when the command could not run or its connection failed. */
  readonly exited: Promise<{ exitCode: number | null; signal: string | null }>;
  kill(signal: string, options?: { group?: boolean }): boolean;
}

/** The guest agent as `hype run -- CMD` drives it. */
export interface CliAgent {
  /** Resolves once the agent answers; rejects after `timeoutMs` or when the VM ends first. */
  ready(timeoutMs: number): Promise<void>;
  spawn(argv: readonly string[], options: { timeoutMs?: number }): GuestCommand;
  /** Asks the guest to flush its file systems and power off (`sync; poweroff -f`). */
  powerOff(): Promise<void>;
}

/** Where the VM reports what it does (@hype/vm's Logger). */
export interface VmLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What the CLI hands createVm; a subset of @hype/vm's VmRuntimeOptions. */
export interface CreateVmOptions {
  /**
   * Receives every byte the guest writes to its console (hvc0 or ttyS0, per config.console). Returns
   * false when the terminal is not keeping up: the console then holds output until onConsoleDrain fires.
   */
  consoleOutput(bytes: Uint8Array): boolean;
  /** Registers the listener for "the terminal can take output again". */
  onConsoleDrain(listener: () => void): void;
  /** The KVM device to open ($HYPE_KVM_DEVICE or /dev/kvm). */
  kvmDevice: string;
  logger: VmLogger;
  /** Boot-timing events (--timings). */
  onTiming?(event: TimingEventLike): void;
}

/** @hype/vm's TimingEvent: `ms` since process start; `value` for a guest boot marker. */
export interface TimingEventLike {
  event: string;
  ms: number;
  value?: number;
}

/** The VM `hype run` builds: @hype/vm's config, with the devices as the flags describe them. */
export interface CliVmConfig extends Omit<VmConfig, 'devices' | 'agent'> {
  /** Disks in order: vda, vdb, ... */
  disks: DiskSpec[];
  /** Attach a virtio-rng entropy device after the disks. */
  rng: boolean;
  /** Network interfaces after the entropy device: eth0, eth1, ... */
  nics: CliNic[];
  /** Attach a virtio-vsock device and connect to the guest agent through it (vm.agent). */
  agent?: boolean;
  /** Attach a virtio-vsock device and serve Firecracker's hybrid vsock protocol on this Unix socket. */
  vsockSocket?: string;
  /** The kernel as the checks opened it (a bzImage's bytes, an ELF read from its file), so that the VM does not open it again. */
  kernelImage?: KernelImage;
}

/**
 * Builds a VM from a validated config. Rejects with a UsageError when the config cannot be used (e.g.
 * an HTTP disk that does not answer, a kernel the loader refuses), with any other error for a VMM failure.
 */
export type CreateVm = (config: CliVmConfig, options: CreateVmOptions) => Promise<CliVm>;

export interface DefaultGuestFiles {
  kernel: string;
  initrd: string;
}

/** The project's default guest (@hype/guest): built and cached on first use. */
export interface DefaultGuest {
  /**
   * Returns the cached kernel and initrd, building what is missing; `progress` gets one line per step
   * (and one for each artifact found in the cache when `reportCached`).
   */
  ensure(progress: (line: string) => void, reportCached?: boolean): Promise<DefaultGuestFiles>;
}

/** The nested rig (nested.ts): this hype command again, inside QEMU emulation with a real /dev/kvm. */
export interface NestedRig {
  /** What is missing for the rig (one line with the install command), or undefined when it can run. */
  problem(): string | undefined;
  /** Runs `hype <args>` inside the rig with `rwDirs` shared read-write; resolves to its exit code. */
  run(args: readonly string[], rwDirs: readonly string[]): Promise<number>;
}
