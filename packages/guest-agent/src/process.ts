/**
 * A command running in the guest through the agent (`AgentClient.spawn`): a ChildProcess-like object
 * with stdin, stdout and stderr, `started` / `exited` promises and `kill()`.
 */
import { AgentError } from './errors.js';
import { DATA_CHUNK_SIZE, ExecFlags, KillFlags, type Frame } from './protocol.js';
import { Session, remoteError, type AgentInfo, type SessionOptions } from './session.js';
import { signalName, signalNumber } from './signals.js';
import type { AgentConnector, AgentStream } from './stream.js';

export interface SpawnOptions {
  /** Environment entries; by default set over the agent's own environment (`replaceEnv` makes them the whole environment). Undefined values are skipped. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The environment is exactly `env` (default false: `env` extends the agent's environment). */
  readonly replaceEnv?: boolean;
  /** Working directory in the guest (default `/`). */
  readonly cwd?: string;
  /** `pipe` (default): `stdin` is writable; `ignore`: the command's stdin is /dev/null and `stdin` is null. */
  readonly stdin?: 'pipe' | 'ignore';
  /** Kill the command (its whole process group) after this many ms; `exited` then rejects with a `timeout` AgentError. */
  readonly timeoutMs?: number;
  /** The signal a timeout sends (default SIGKILL). */
  readonly killSignal?: string | number;
  /** After a timeout's signal, how long to wait for the command to end before dropping the connection (default 2000 ms). */
  readonly killGraceMs?: number;
  /** Undelivered stdout + stderr bytes above which the connection is paused (default 1 MiB). */
  readonly readableHighWaterMark?: number;
  /** stdin bytes queued in the client above which `stdin.write()` returns false (default 64 KiB). */
  readonly writableHighWaterMark?: number;
}

export interface ExitStatus {
  /** The exit status, or null when a signal ended the command. */
  readonly exitCode: number | null;
  /** The signal's name (`SIGTERM`), or null when the command exited. */
  readonly signal: string | null;
  readonly coreDumped: boolean;
}

/** Internal: what a process needs from its client. */
export interface ProcessContext {
  readonly connect: AgentConnector;
  readonly session: SessionOptions;
}

type Timer = ReturnType<typeof setTimeout>;

/**
 * A command's stdout or stderr: `onData` callbacks, or `for await (const chunk of stream)`. Bytes that
 * arrive with neither are held (then the connection is paused at the process's high-water mark, when the
 * stream supports it, so the command waits).
 */
export class AgentReadable implements AsyncIterable<Uint8Array> {
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();
  private readonly endListeners = new Set<() => void>();
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private iterating = false;
  private abandoned = false;
  private ended = false;
  private wake: (() => void) | undefined;

  /** @internal */
  constructor(private readonly changed: () => void) {}

  /** Bytes held for a consumer that has not taken them yet. */
  get readableLength(): number {
    return this.queued;
  }

  get readableEnded(): boolean {
    return this.ended && this.queued === 0;
  }

  /** Each chunk of output, in order (held chunks first). Returns an unsubscribe function. */
  onData(callback: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(callback);
    if (!this.iterating && this.queue.length > 0) {
      const held = this.queue.splice(0);
      this.queued = 0;
      for (const bytes of held) callback(bytes);
      this.changed();
    }
    return () => this.listeners.delete(callback);
  }

  /** The stream ended (the command closed it, or the process ended or failed). */
  onEnd(callback: () => void): () => void {
    if (this.ended) {
      callback();
      return () => {};
    }
    this.endListeners.add(callback);
    return () => this.endListeners.delete(callback);
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterating) throw new Error('this output stream is already being iterated');
    this.iterating = true;
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          const bytes = this.queue.shift();
          if (bytes !== undefined) {
            this.queued -= bytes.length;
            this.changed();
            return { value: bytes, done: false };
          }
          if (this.ended || !this.iterating) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        // The consumer stopped: drop what is held and stop holding more.
        this.iterating = false;
        this.abandoned = true;
        this.queue.length = 0;
        this.queued = 0;
        this.changed();
        this.wakeUp();
        return { value: undefined, done: true };
      },
    };
  }

  /** @internal */
  push(bytes: Uint8Array): void {
    if (this.ended) return;
    for (const listener of this.listeners) listener(bytes);
    // Held for the iterator, or for a consumer still to come (not after an iterator was abandoned).
    if (this.iterating || (this.listeners.size === 0 && !this.abandoned)) {
      this.queue.push(bytes);
      this.queued += bytes.length;
      this.wakeUp();
    }
  }

  /** @internal */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.wakeUp();
    for (const listener of this.endListeners) listener();
    this.endListeners.clear();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * A command's stdin. `write()` queues and returns false once `writableHighWaterMark` bytes wait (then wait
 * for `onDrain`, or `await drained()`); the client sends within the agent's stdin window. `end()` sends EOF
 * after the queued bytes. After the command ends, writes are dropped and return false.
 */
export class AgentStdin {
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private ending = false;
  private closed = false;
  private needDrain = false;
  private readonly drainListeners = new Set<() => void>();

  /** @internal */
  constructor(
    private readonly highWaterMark: number,
    private readonly kick: () => void,
  ) {}

  /** Bytes queued in the client, not yet sent. */
  get writableLength(): number {
    return this.queued;
  }

  /** False after `end()` or once the command ended. */
  get writable(): boolean {
    return !this.ending && !this.closed;
  }

  write(data: Uint8Array | string): boolean {
    if (!this.writable) return false;
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data); // a copy, also of a Buffer
    if (bytes.length > 0) {
      this.queue.push(bytes);
      this.queued += bytes.length;
      this.kick();
    }
    if (this.queued >= this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /** No more stdin: EOF reaches the command after the queued bytes. */
  end(data?: Uint8Array | string): void {
    if (data !== undefined) this.write(data);
    if (this.ending || this.closed) return;
    this.ending = true;
    this.kick();
  }

  /** The queue went below the high-water mark after `write()` returned false (or stdin closed). */
  onDrain(callback: () => void): () => void {
    this.drainListeners.add(callback);
    return () => this.drainListeners.delete(callback);
  }

  /** Resolves at the next drain, at once if nothing waits, or when stdin closes. */
  drained(): Promise<void> {
    if (!this.needDrain || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.onDrain(() => {
        off();
        resolve();
      });
    });
  }

  /** @internal The next piece to send (at most `max` bytes), if any. */
  take(max: number): Uint8Array | undefined {
    const head = this.queue[0];
    if (head === undefined || max <= 0) return undefined;
    let piece = head;
    if (head.length > max) {
      piece = head.subarray(0, max);
      this.queue[0] = head.subarray(max);
    } else {
      this.queue.shift();
    }
    this.queued -= piece.length;
    return piece;
  }

  /** @internal All queued bytes are taken and `end()` was called. */
  get endReady(): boolean {
    return this.ending && this.queue.length === 0;
  }

  /** @internal */
  maybeDrain(): void {
    if (this.needDrain && this.queued < this.highWaterMark) {
      this.needDrain = false;
      for (const listener of [...this.drainListeners]) listener();
    }
  }

  /** @internal The command ended or the process failed: nothing more is sent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queued = 0;
    this.needDrain = true;
    this.maybeDrain();
  }
}

/** A command started with `AgentClient.spawn()`. */
export class AgentProcess {
  /** The command's pid in the guest (also its process group), once started. */
  pid: number | undefined;
  /** Null with `stdin: 'ignore'`. */
  readonly stdin: AgentStdin | null;
  readonly stdout: AgentReadable;
  readonly stderr: AgentReadable;
  /** Resolves with the pid once the command runs; rejects if it could not start (e.g. `remote` ENOENT). */
  readonly started: Promise<number>;
  /** Resolves once the command exited and its output ended; rejects on errors (timeout, reset, ...). */
  readonly exited: Promise<ExitStatus>;
  /** The agent's HELLO_ACK, once known. */
  agentInfo: AgentInfo | undefined;

  private session: Session | undefined;
  private state: 'connecting' | 'starting' | 'running' | 'done' = 'connecting';
  private unacked = 0;
  private eofSent = false;
  private timedOut = false;
  private timer: Timer | undefined;
  private graceTimer: Timer | undefined;
  private paused = false;
  private readonly pendingKills: Frame[] = [];
  private readonly highWaterMark: number;
  private resolveStarted!: (pid: number) => void;
  private rejectStarted!: (error: AgentError) => void;
  private resolveExited!: (status: ExitStatus) => void;
  private rejectExited!: (error: AgentError) => void;

  /** @internal Use `AgentClient.spawn()`. */
  constructor(
    context: ProcessContext,
    readonly argv: readonly string[],
    private readonly options: SpawnOptions = {},
  ) {
    if (argv.length === 0) throw new TypeError('spawn needs at least the program in argv');
    for (const arg of argv) if (typeof arg !== 'string') throw new TypeError('argv must be strings');
    const env: string[] = [];
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) continue;
      if (name === '' || name.includes('=')) throw new TypeError(`environment variable name ${JSON.stringify(name)} is empty or contains '='`);
      env.push(`${name}=${value}`);
    }
    if (options.killSignal !== undefined) signalNumber(options.killSignal);
    const stdinMode = options.stdin ?? 'pipe';
    if (stdinMode !== 'pipe' && stdinMode !== 'ignore') throw new TypeError(`stdin must be 'pipe' or 'ignore', got ${JSON.stringify(stdinMode)}`);
    const flags = (stdinMode === 'pipe' ? ExecFlags.STDIN : 0) | (options.replaceEnv ? ExecFlags.REPLACE_ENV : 0);
    const request: Frame = { type: 'EXEC', flags, cwd: options.cwd ?? '', argv, env };

    this.highWaterMark = options.readableHighWaterMark ?? 1024 * 1024;
    this.stdout = new AgentReadable(() => this.flowControl());
    this.stderr = new AgentReadable(() => this.flowControl());
    this.stdin = stdinMode === 'pipe' ? new AgentStdin(options.writableHighWaterMark ?? 64 * 1024, () => this.pumpStdin()) : null;
    this.started = new Promise<number>((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.exited = new Promise<ExitStatus>((resolve, reject) => {
      this.resolveExited = resolve;
      this.rejectExited = reject;
    });
    // Observed or not, a failure must not become an unhandled rejection of the other promise.
    this.started.catch(() => {});
    this.exited.catch(() => {});

    if (options.timeoutMs !== undefined) {
      if (!(options.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${options.timeoutMs}`);
      this.timer = setTimeout(() => this.onTimeout(), options.timeoutMs);
    }
    // A connector that throws instead of rejecting is a rejection too.
    new Promise<AgentStream>((resolve) => resolve(context.connect())).then(
      (stream) => {
        if (this.state === 'done') {
          stream.destroy();
          return;
        }
        this.state = 'starting';
        this.session = new Session(
          stream,
          {
            frame: (frame) => this.onFrame(frame),
            fail: (error) => this.finish(error),
            hello: (info) => {
              this.agentInfo = info;
              this.pumpStdin();
            },
            writable: () => this.pumpStdin(),
          },
          context.session,
        );
        this.session.send(request);
        for (const kill of this.pendingKills.splice(0)) this.session.send(kill);
      },
      (error: unknown) => this.finish(noAgent(error)),
    );
  }

  /**
   * Sends `signal` (default SIGTERM) to the command, or with `group` to its whole process group. False
   * when the process already ended. The signal's effect shows in `exited`.
   */
  kill(signal: string | number = 'SIGTERM', options: { group?: boolean } = {}): boolean {
    const frame: Frame = { type: 'KILL', signal: signalNumber(signal), flags: options.group ? KillFlags.GROUP : 0 };
    if (this.state === 'done') return false;
    if (this.session === undefined) this.pendingKills.push(frame);
    else this.session.send(frame);
    return true;
  }

  /** @internal Ends the process with `error`: the connection is reset, and the agent kills the command's group. */
  abort(error: AgentError): void {
    if (this.session?.open) this.session.fail(error);
    else this.finish(error);
  }

  private onFrame(frame: Frame): void {
    const session = this.session!;
    const protocol = (message: string) => session.fail(new AgentError('protocol', `hype-agent: ${message}`));
    switch (frame.type) {
      case 'STARTED':
        if (this.state !== 'starting') return protocol('a second STARTED');
        this.state = 'running';
        this.pid = frame.pid;
        this.resolveStarted(frame.pid);
        return;
      case 'STDOUT':
      case 'STDERR':
        if (this.state !== 'running') return protocol(`${frame.type} before STARTED`);
        (frame.type === 'STDOUT' ? this.stdout : this.stderr).push(frame.data);
        this.flowControl();
        return;
      case 'STDIN_ACK':
        if (frame.bytes > this.unacked) return protocol(`STDIN_ACK of ${frame.bytes} bytes, but only ${this.unacked} were sent`);
        this.unacked -= frame.bytes;
        this.pumpStdin();
        return;
      case 'EXIT': {
        if (this.state !== 'running') return protocol('EXIT before STARTED');
        const status: ExitStatus =
          frame.kind === 'exited'
            ? { exitCode: frame.value, signal: null, coreDumped: false }
            : { exitCode: null, signal: signalName(frame.value), coreDumped: frame.coreDumped };
        session.complete();
        if (this.timedOut) this.finish(this.timeoutError(status));
        else this.finish(undefined, status);
        return;
      }
      case 'ERROR':
        // A final frame: the connection closes gracefully.
        session.complete();
        this.finish(remoteError(frame));
        return;
      default:
        return protocol(`${frame.type} is not part of EXEC`);
    }
  }

  private pumpStdin(): void {
    const session = this.session;
    const stdin = this.stdin;
    if (stdin === null || session === undefined || !session.open || this.agentInfo === undefined) return;
    while (session.canSend) {
      const piece = stdin.take(Math.min(DATA_CHUNK_SIZE, this.agentInfo.stdinWindow - this.unacked));
      if (piece === undefined) break;
      this.unacked += piece.length;
      session.send({ type: 'STDIN', data: piece });
    }
    if (stdin.endReady && !this.eofSent) {
      this.eofSent = true;
      session.send({ type: 'STDIN_EOF' });
    }
    stdin.maybeDrain();
  }

  /** Pauses the connection while consumers hold more than the high-water mark of output, resumes below half. */
  private flowControl(): void {
    const held = this.stdout.readableLength + this.stderr.readableLength;
    if (!this.paused && held > this.highWaterMark) {
      this.paused = true;
      this.session?.pause();
    } else if (this.paused && held <= this.highWaterMark / 2) {
      this.paused = false;
      this.session?.resume();
    }
  }

  private onTimeout(): void {
    this.timer = undefined;
    if (this.state === 'done') return;
    const ms = this.options.timeoutMs!;
    if (this.state !== 'running') {
      this.abort(new AgentError('timeout', `${this.argv[0]} did not start within ${ms} ms`));
      return;
    }
    this.timedOut = true;
    this.kill(this.options.killSignal ?? 'SIGKILL', { group: true });
    const grace = this.options.killGraceMs ?? 2000;
    this.graceTimer = setTimeout(() => this.abort(this.timeoutError(undefined)), grace);
  }

  private timeoutError(status: ExitStatus | undefined): AgentError {
    const signal = signalName(signalNumber(this.options.killSignal ?? 'SIGKILL'));
    const outcome = status === undefined ? 'and did not end after' : status.signal !== null ? `and was killed by ${status.signal} after` : `and exited with ${status.exitCode} after`;
    return new AgentError('timeout', `${this.argv[0]} timed out after ${this.options.timeoutMs} ms ${outcome} ${signal}`);
  }

  private finish(error?: AgentError, status?: ExitStatus): void {
    if (this.state === 'done') return;
    const wasRunning = this.state === 'running';
    this.state = 'done';
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
    this.timer = this.graceTimer = undefined;
    this.stdin?.close();
    if (this.paused) {
      this.paused = false;
      this.session?.resume();
    }
    this.stdout.end();
    this.stderr.end();
    if (error !== undefined) {
      if (!wasRunning) this.rejectStarted(error);
      this.rejectExited(error);
    } else {
      this.resolveExited(status!);
    }
  }
}

/** A connector's rejection as AgentError `no-agent`. */
export function noAgent(error: unknown): AgentError {
  if (error instanceof AgentError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  return new AgentError('no-agent', `hype-agent: cannot connect: ${message}`, { cause: error, code: typeof code === 'string' ? code : undefined });
}
