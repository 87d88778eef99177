import { EventEmitter } from 'node:events';
import type { CliVmConfig } from '../src/ports.js';
import type { StopSignal, VmOutcome } from '../src/exit-codes.js';
import type { CliAgent, CliVm, CreateVm, CreateVmOptions, DefaultGuest, DefaultGuestFiles, GuestCommand } from '../src/ports.js';
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
  /** Present when the config asked for the guest agent (hype run -- CMD). */
  readonly agent: FakeAgent | undefined;

  constructor(
    readonly config: CliVmConfig,
    readonly options: CreateVmOptions,
  ) {
    if (config.agent) this.agent = new FakeAgent(this);
  }

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

/** An output stream of a FakeCommand: chunks the test pushes, iterated by the CLI. */
class FakeOutput implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private wake: (() => void) | undefined;
  push(text: string | Uint8Array): void {
    this.queue.push(typeof text === 'string' ? Buffer.from(text) : text);
    this.wake?.();
  }
  end(): void {
    this.ended = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const next = this.queue.shift();
      if (next !== undefined) yield next;
      else if (this.ended) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** A command in the fake guest: the test writes its output and decides how it ends. */
export class FakeCommand implements GuestCommand {
  readonly stdout = new FakeOutput();
  readonly stderr = new FakeOutput();
  readonly stdinChunks: string[] = [];
  stdinEnded = false;
  /** stdin.write() returns false once this many chunks wait; drain() frees them. */
  stdinLimit = Infinity;
  readonly kills: { signal: string; group: boolean }[] = [];
  readonly exited: Promise<{ exitCode: number | null; signal: string | null }>;
  private settle: { resolve(s: { exitCode: number | null; signal: string | null }): void; reject(e: unknown): void } | undefined;
  private readonly drains: (() => void)[] = [];
  readonly stdin: GuestCommand['stdin'];

  constructor(
    readonly argv: readonly string[],
    readonly options: { timeoutMs?: number },
  ) {
    this.exited = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.stdin = {
      write: (bytes) => {
        this.stdinChunks.push(Buffer.from(bytes).toString());
        return this.stdinChunks.length < this.stdinLimit;
      },
      end: () => {
        this.stdinEnded = true;
      },
      onDrain: (callback) => this.drains.push(callback),
    };
  }
  drain(): void {
    this.stdinLimit = Infinity;
    for (const callback of this.drains) callback();
  }
  kill(signal: string, options: { group?: boolean } = {}): boolean {
    this.kills.push({ signal, group: options.group === true });
    return true;
  }
  exit(status: { exitCode: number | null; signal?: string | null }): void {
    this.stdout.end();
    this.stderr.end();
    this.settle!.resolve({ exitCode: status.exitCode, signal: status.signal ?? null });
  }
  fail(error: unknown): void {
    this.stdout.end();
    this.stderr.end();
    this.settle!.reject(error);
  }
}

/** The guest agent of a FakeVm: ready at once unless told otherwise; powerOff() powers the VM off. */
export class FakeAgent implements CliAgent {
  readonly commands: FakeCommand[] = [];
  readyTimeouts: number[] = [];
  powerOffs = 0;
  /** When set (before the next macrotask after run() started), ready() waits for it. */
  readyGate: Promise<void> | undefined;
  /** When false, powerOff() does nothing (a guest that does not go down). */
  powersOff = true;
  private spawned: (command: FakeCommand) => void = () => {};
  /** Resolves with the first command the CLI starts. */
  readonly started = new Promise<FakeCommand>((resolve) => (this.spawned = resolve));

  constructor(private readonly vm: FakeVm) {}

  async ready(timeoutMs: number): Promise<void> {
    this.readyTimeouts.push(timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, 0));
    await this.readyGate;
  }
  spawn(argv: readonly string[], options: { timeoutMs?: number }): FakeCommand {
    const command = new FakeCommand(argv, options);
    this.commands.push(command);
    this.spawned(command);
    return command;
  }
  async powerOff(): Promise<void> {
    this.powerOffs++;
    if (this.powersOff) this.vm.finish({ kind: 'poweroff', status: 0 });
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
    const vm = new FakeVm({ ...config }, options); // as given (the CLI drops the kernel bytes afterwards)
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
