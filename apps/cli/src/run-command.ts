import { AgentError, signalNumber } from '@hype/guest-agent';
import type { GuestCommandSpec } from './args.js';
import { CommandExitCode, decideExit, SIGNAL_EXIT_CODES, type StopSignal, type VmOutcome } from './exit-codes.js';
import type { CliAgent, CliVm, GuestCommand } from './ports.js';

/** How long `hype run -- CMD` waits for the guest agent after the VM starts (boot included). */
export const AGENT_READY_TIMEOUT_MS = 300_000;
/** After CMD ends: how long the guest gets to sync and power off before the VM is stopped. */
export const POWER_OFF_TIMEOUT_MS = 30_000;
/** The guest console's last bytes, printed when the VM fails (the console is not shown otherwise). */
export const CONSOLE_TAIL_BYTES = 16 * 1024;

/** The bytes a stream wants and the way to wait for it to take more (a Node Writable's shape). */
export interface CommandOutput {
  write(bytes: Uint8Array): unknown;
  once?(event: 'drain' | 'close' | 'error', listener: () => void): unknown;
  removeListener?(event: 'drain' | 'close' | 'error', listener: () => void): unknown;
  /** True once the stream is gone (e.g. `| head` exited: EPIPE). */
  readonly destroyed?: boolean;
}

/** The process's stdin as a command needs it. */
export interface CommandInput {
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  removeListener(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  removeListener(event: 'end', listener: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface CommandRunIo {
  stdin: CommandInput;
  stdout: CommandOutput;
  stderr: CommandOutput;
  /** hype's own messages (one line each, without the `hype: ` prefix). */
  report(message: string): void;
  onSignal(signal: StopSignal, handler: () => void): () => void;
  /** How long a stopped VM may take to end before hype gives up on it (default 5000 ms). */
  stopTimeoutMs?: number;
  /** How long the guest gets to power off after CMD (default POWER_OFF_TIMEOUT_MS). */
  powerOffTimeoutMs?: number;
}

/** Keeps the last `limit` bytes the guest wrote to its console. */
export class ConsoleTail {
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  constructor(private readonly limit = CONSOLE_TAIL_BYTES) {}

  push(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
    this.bytes += bytes.length;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0].length >= this.limit) this.bytes -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

/** What ended a command run, before it becomes an exit code. */
type CommandResult =
  | { kind: 'status'; status: { exitCode: number | null; signal: string | null } }
  /** `agentUp`: the agent answered, so the guest can still be powered off through it. */
  | { kind: 'failed'; code: number; message: string; showConsole?: boolean; agentUp?: boolean };

/** `CMD exited 3` → 3, `killed by SIGTERM` → 143. */
export function statusExitCode(status: { exitCode: number | null; signal: string | null }): number {
  if (status.exitCode !== null) return status.exitCode;
  let number: number;
  try {
    number = signalNumber(status.signal ?? 'SIGKILL');
  } catch {
    number = 9;
  }
  return 128 + number;
}

/** An AgentError from a command's start or run, as the exit code and message of `hype run -- CMD`. */
export function commandFailure(argv0: string, error: unknown, timeoutMs: number | undefined): { code: number; message: string } {
  if (error instanceof AgentError) {
    if (error.kind === 'timeout' && timeoutMs !== undefined) {
      return { code: CommandExitCode.timeout, message: `${argv0} did not finish within --timeout ${timeoutMs / 1000} s: killed` };
    }
    if (error.kind === 'remote' && error.op === 'exec') {
      if (error.code === 'ENOENT') return { code: CommandExitCode.notFound, message: `${argv0}: command not found in the guest` };
      return { code: CommandExitCode.cannotRun, message: `${argv0}: cannot run in the guest: ${error.message}` };
    }
    if (error.kind === 'remote' && error.op === 'chdir') return { code: CommandExitCode.cannotRun, message: error.message };
  }
  return { code: CommandExitCode.hypeFailure, message: `${argv0}: ${(error as Error)?.message ?? String(error)}` };
}

/**
 * `hype run -- CMD` on a created VM: runs it, waits for the agent, runs CMD with the process's stdin,
 * stdout and stderr (with backpressure both ways), then has the guest sync and power off. Resolves to
 * the exit code (the command's status, or one of CommandExitCode / the signal codes).
 */
export async function runGuestCommand(vm: CliVm, spec: GuestCommandSpec, io: CommandRunIo, tail: ConsoleTail): Promise<number> {
  const agent = vm.agent;
  if (!agent) throw new Error('runGuestCommand: the VM was created without its agent');
  let outcome: VmOutcome | undefined;
  let giveUp: () => void = () => {};
  const gaveUp = new Promise<void>((resolve) => (giveUp = resolve));
  // Settles when the VM has ended, or when hype gave up waiting for a stopped VM (then it counts as stopped).
  const ended = Promise.race([
    vm.run().then(
      (o) => (outcome ??= o),
      (error: unknown) => (outcome ??= { kind: 'internal-error', message: (error as Error)?.stack ?? String(error) }),
    ),
    gaveUp.then(() => (outcome ??= { kind: 'stopped' })),
  ]);
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    if (stopTimer !== undefined) return giveUp(); // asked again while stopping: do not wait any longer
    vm.stop();
    const ms = io.stopTimeoutMs ?? 5000;
    stopTimer = setTimeout(() => {
      io.report(`the VM did not stop within ${ms} ms; exiting anyway`);
      giveUp();
    }, ms);
    (stopTimer as { unref?: () => void }).unref?.();
  };

  let child: GuestCommand | undefined;
  let signalled: StopSignal | undefined;
  const unsubscribes = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) =>
    io.onSignal(signal, () => {
      // The first signal goes to the running command's process group (its status then says so); a
      // second one, or one while there is no command to signal, stops the VM.
      if (child !== undefined && signalled === undefined && child.kill(signal, { group: true })) {
        signalled = signal;
        return;
      }
      signalled ??= signal;
      stop();
    }),
  );
  try {
    const result = await runCommand(agent, spec, io, ended, (c) => (child = c));
    const endedUnderCommand = outcome !== undefined;
    const stopping = stopTimer !== undefined; // a signal already asked the VM to stop
    if (outcome === undefined && !stopping && (result.kind === 'status' || result.agentUp === true)) {
      await powerOff(agent, ended, stop, io.powerOffTimeoutMs ?? POWER_OFF_TIMEOUT_MS);
    } else if (outcome === undefined && !stopping) {
      stop();
    }
    await ended;
    return finish(result, outcome!, endedUnderCommand, spec, io, tail, signalled);
  } finally {
    if (stopTimer !== undefined) clearTimeout(stopTimer);
    for (const unsubscribe of unsubscribes) unsubscribe();
  }
}

async function runCommand(
  agent: CliAgent,
  spec: GuestCommandSpec,
  io: CommandRunIo,
  vmEnded: Promise<unknown>,
  started: (child: GuestCommand) => void,
): Promise<CommandResult> {
  const argv0 = spec.argv[0];
  const ready = await Promise.race([
    agent.ready(AGENT_READY_TIMEOUT_MS).then(
      () => undefined,
      (error: unknown) => error,
    ),
    vmEnded.then(() => new Error('the VM ended before its guest agent answered')),
  ]);
  if (ready !== undefined) {
    const hint =
      ' (hype\'s default guest starts hype-agent on vsock port 1024; another guest needs CONFIG_VIRTIO_VSOCKETS and an init that starts it)';
    return { kind: 'failed', code: CommandExitCode.hypeFailure, message: `${(ready as Error).message}${hint}`, showConsole: true };
  }
  const child = agent.spawn(spec.argv, spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {});
  started(child);
  const stopInput = child.stdin ? pipeInput(io.stdin, child.stdin) : () => {};
  // A reader that went away (`| head`): the command gets SIGPIPE, as in a shell pipeline.
  const broken = () => child.kill('SIGPIPE', { group: true });
  const outputs = Promise.all([pipeOutput(child.stdout, io.stdout, broken), pipeOutput(child.stderr, io.stderr, broken)]);
  try {
    const status = await child.exited;
    await outputs;
    return { kind: 'status', status };
  } catch (error) {
    await outputs.catch(() => {});
    return { kind: 'failed', ...commandFailure(argv0, error, spec.timeoutMs), agentUp: true };
  } finally {
    stopInput();
  }
}

/** The process's stdin into the command's, pausing stdin while the command's queue is full. Returns the stop function. */
function pipeInput(input: CommandInput, stdin: NonNullable<GuestCommand['stdin']>): () => void {
  let done = false;
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!stdin.write(bytes)) input.pause();
  };
  const onEnd = () => {
    stop();
    stdin.end();
  };
  const stop = () => {
    if (done) return;
    done = true;
    input.removeListener('data', onData);
    input.removeListener('end', onEnd);
    input.pause();
  };
  stdin.onDrain(() => {
    if (!done) input.resume();
  });
  input.on('data', onData);
  input.on('end', onEnd);
  input.resume();
  return stop;
}

/**
 * The command's output into `sink`, waiting for 'drain' when it is full. When the sink is gone (closed,
 * errored), `onBroken` runs once and the rest is read and dropped, so the command is never left blocked.
 */
async function pipeOutput(source: AsyncIterable<Uint8Array>, sink: CommandOutput, onBroken: () => void): Promise<void> {
  let broken = false;
  for await (const chunk of source) {
    if (!broken && sink.destroyed === true) {
      broken = true;
      onBroken();
    }
    if (broken) continue;
    if (sink.write(chunk) === false && sink.once) await writable(sink);
  }
}

/** Resolves on 'drain', or when the stream closes or fails (then `destroyed` tells). */
function writable(sink: CommandOutput): Promise<void> {
  return new Promise((resolve) => {
    const events = ['drain', 'close', 'error'] as const;
    const done = () => {
      for (const event of events) sink.removeListener?.(event, done);
      resolve();
    };
    for (const event of events) sink.once!(event, done);
  });
}

/**
 * `sync; poweroff -f` through the agent; the VM is stopped if it has not ended within `timeoutMs`, or
 * soon after the request failed while the VM still runs (no poweroff in the guest, the agent gone).
 */
async function powerOff(agent: CliAgent, ended: Promise<unknown>, stop: () => void, timeoutMs: number): Promise<void> {
  let failedTimer: ReturnType<typeof setTimeout> | undefined;
  // The request's connection dies with the VM, so a failure is expected; it only means something if
  // the VM is still running a moment later.
  agent.powerOff().catch(() => {
    failedTimer = setTimeout(stop, POWER_OFF_FAILED_GRACE_MS);
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), timeoutMs);
  });
  const late = await Promise.race([ended.then(() => false), timedOut]);
  clearTimeout(timer);
  if (failedTimer !== undefined) clearTimeout(failedTimer);
  if (late) stop();
}

/** After the power-off request failed: how long the VM may still take to end by itself. */
const POWER_OFF_FAILED_GRACE_MS = 2000;

function finish(
  result: CommandResult,
  outcome: VmOutcome,
  endedUnderCommand: boolean,
  spec: GuestCommandSpec,
  io: CommandRunIo,
  tail: ConsoleTail,
  signalled: StopSignal | undefined,
): number {
  if (result.kind === 'status') {
    // The command ran to its end; how the guest then went down matters only if it did not power off.
    if (outcome.kind !== 'poweroff' && outcome.kind !== 'halted' && outcome.kind !== 'stopped') {
      const decision = decideExit(outcome);
      io.report(`after ${spec.argv[0]} ended: ${decision.message ?? outcome.kind}`);
    }
    return statusExitCode(result.status);
  }
  if (signalled !== undefined && outcome.kind === 'stopped') {
    io.report(`stopped by ${signalled}`);
    return SIGNAL_EXIT_CODES[signalled];
  }
  // The VM ended under the command: its way of ending is the better explanation.
  if (endedUnderCommand && outcome.kind === 'poweroff' && result.agentUp === true) {
    io.report(`the guest powered off (status ${outcome.status}) before ${spec.argv[0]} finished`);
    return CommandExitCode.hypeFailure;
  }
  io.report(result.message);
  if (endedUnderCommand && outcome.kind !== 'stopped' && outcome.kind !== 'poweroff') {
    const decision = decideExit(outcome);
    if (decision.message) io.report(decision.message);
    if (decision.detail) io.report(decision.detail);
  }
  const vmFailed = endedUnderCommand && outcome.kind !== 'poweroff' && outcome.kind !== 'stopped' && outcome.kind !== 'halted';
  if (result.showConsole || vmFailed) {
    const text = tail.text();
    if (text !== '') io.report(`the guest console's last lines:\n${text.replace(/\r/g, '').trimEnd()}`);
  }
  return result.code;
}
