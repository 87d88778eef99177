import { EventEmitter } from 'node:events';
import type { CliVmConfig } from '../src/ports.js';
import type { StopSignal, VmOutcome } from '../src/exit-codes.js';
import type { CliVm, CreateVm, CreateVmOptions, DefaultGuest, DefaultGuestFiles } from '../src/ports.js';
import type { CliIo } from '../src/run-cli.js';
import { loaderCheckBoot } from '../src/boot-check.js';

/** A stdin double: a TTY (raw mode recorded) or a pipe. */
export class FakeStdin extends EventEmitter {
  rawModeCalls: boolean[] = [];
  paused = true;
  constructor(readonly isTTY: boolean) {
    super();
  }
  setRawMode(mode: boolean): this {
    this.rawModeCalls.push(mode);
    return this;
  }
  get isRaw(): boolean {
    return this.rawModeCalls.at(-1) === true;
  }
  type(...chunks: (string | number[])[]): void {
    for (const chunk of chunks) this.emit('data', Buffer.from(chunk as string));
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
}

export class Capture {
  chunks: (string | Uint8Array)[] = [];
  write(chunk: string | Uint8Array): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('latin1'))).join('');
  }
}

/**
 * A VM double: records its config and console input; the test decides how it ends (finish()) or lets
 * stop() end it, as @hype/vm must.
 */
export class FakeVm implements CliVm {
  input: number[] = [];
  stopCalls = 0;
  running = false;
  private resolveRun: (outcome: VmOutcome) => void = () => {};
  private rejectRun: (error: Error) => void = () => {};
  /** When false, stop() is ignored (a VM that hangs). */
  honoursStop = true;

  constructor(
    readonly config: CliVmConfig,
    readonly options: CreateVmOptions,
  ) {}

  run(): Promise<VmOutcome> {
    this.running = true;
    return new Promise((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
  }
  writeConsole(bytes: Uint8Array): void {
    this.input.push(...bytes);
  }
  stop(): void {
    this.stopCalls++;
    if (this.honoursStop) this.resolveRun({ kind: 'stopped' });
  }
  guestWrites(text: string): void {
    this.options.consoleOutput(Buffer.from(text));
  }
  finish(outcome: VmOutcome): void {
    this.resolveRun(outcome);
  }
  crash(error: Error): void {
    this.rejectRun(error);
  }
}

export class FakeSignals {
  handlers = new Map<StopSignal, Set<() => void>>();
  on = (signal: StopSignal, handler: () => void) => {
    const set = this.handlers.get(signal) ?? new Set();
    set.add(handler);
    this.handlers.set(signal, set);
    return () => set.delete(handler);
  };
  send(signal: StopSignal): void {
    for (const handler of [...(this.handlers.get(signal) ?? [])]) handler();
  }
  get count(): number {
    return [...this.handlers.values()].reduce((n, set) => n + set.size, 0);
  }
}

export class FakeGuest implements DefaultGuest {
  calls = 0;
  constructor(
    private readonly files: DefaultGuestFiles | Error,
    private readonly steps: string[] = [],
  ) {}
  async ensure(progress: (line: string) => void): Promise<DefaultGuestFiles> {
    this.calls++;
    for (const step of this.steps) progress(step);
    if (this.files instanceof Error) throw this.files;
    return this.files;
  }
}

export interface Harness {
  io: CliIo;
  stdin: FakeStdin;
  stdout: Capture;
  stderr: Capture;
  signals: FakeSignals;
  vms: FakeVm[];
  /** Resolves with the VM once runCli has created it and started run(). */
  vmStarted: Promise<FakeVm>;
  cleanups: Set<() => void>;
}

export function harness(overrides: Partial<CliIo> & { tty?: boolean; kvmDevice?: string } = {}): Harness {
  const stdin = new FakeStdin(overrides.tty ?? true);
  const stdout = new Capture();
  const stderr = new Capture();
  const signals = new FakeSignals();
  const vms: FakeVm[] = [];
  const cleanups = new Set<() => void>();
  let started: (vm: FakeVm) => void = () => {};
  const vmStarted = new Promise<FakeVm>((resolve) => {
    started = resolve;
  });
  const createVm: CreateVm = async (config, options) => {
    const vm = new FakeVm(config, options);
    vms.push(vm);
    const run = vm.run.bind(vm);
    vm.run = () => {
      const promise = run();
      started(vm);
      return promise;
    };
    return vm;
  };
  const io: CliIo = {
    stdin,
    stdout,
    stderr,
    env: { HYPE_KVM_DEVICE: overrides.kvmDevice ?? '/dev/null' },
    createVm,
    guest: new FakeGuest(new Error('no default guest in this test')),
    checkBoot: loaderCheckBoot,
    onSignal: signals.on,
    registerCleanup: (cleanup) => {
      cleanups.add(cleanup);
      return () => cleanups.delete(cleanup);
    },
    stopTimeoutMs: 50,
    ...overrides,
  };
  return { io, stdin, stdout, stderr, signals, vms, vmStarted, cleanups };
}
