/**
 * The host side of the hype-agent protocol: `AgentClient` runs commands and moves files through the
 * guest agent, one connection per request, over any stream a connector opens (vsock in a VM, a Unix
 * socket in tests).
 */
import { AgentError } from './errors.js';
import { DATA_CHUNK_SIZE, WriteFileFlags, type Frame, type FrameOf } from './protocol.js';
import { AgentProcess, noAgent, type SpawnOptions } from './process.js';
import { Session, remoteError, type AgentInfo, type SessionOptions } from './session.js';
import type { AgentConnector, AgentStream } from './stream.js';

export interface AgentClientOptions {
  /** Opens a new connection to the agent, e.g. `() => vsock.connect(DEFAULT_AGENT_PORT)` or `() => connectUnix(path)`. */
  readonly connect: AgentConnector;
  /** Sent in HELLO, for the agent's logs. Default `@hype/guest-agent`. */
  readonly clientName?: string;
  /** HELLO_ACK must arrive within this many ms of connecting (default 10 000), else AgentError `timeout`. */
  readonly helloTimeoutMs?: number;
}

export type StdinSource = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface ExecOptions extends Omit<SpawnOptions, 'stdin' | 'readableHighWaterMark'> {
  /** The command's stdin (all of it; EOF after). Without it, stdin is /dev/null. */
  readonly stdin?: StdinSource;
  /** stdout + stderr bytes collected at most (default 64 MiB); beyond, the command is killed and the call rejects (`output-limit`). */
  readonly maxOutputBytes?: number;
}

export interface ExecResult {
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  /** The exit status, or null when a signal ended the command. */
  readonly exitCode: number | null;
  /** The signal's name (`SIGTERM`), or null when the command exited. */
  readonly signal: string | null;
}

export interface WriteFileOptions {
  /** Permission bits, applied exactly (default 0o644). */
  readonly mode?: number;
  /** Create missing parent directories (mode 0755). Default false. */
  readonly mkdirs?: boolean;
  readonly timeoutMs?: number;
}

export interface ReadFileOptions {
  /** The most bytes accepted (default 64 MiB); a larger file rejects with `remote` EFBIG. */
  readonly maxBytes?: number;
  readonly timeoutMs?: number;
}

export interface ReadyOptions {
  /** Give up after this many ms (default 60 000). */
  readonly timeoutMs?: number;
  /** Stop waiting when it aborts (a VM passes one that aborts when the VM ends). */
  readonly signal?: AbortSignal;
}

export const DEFAULT_READY_TIMEOUT_MS = 60_000;

/** The errors ready() waits out. */
const RETRYABLE: ReadonlySet<AgentError['kind']> = new Set(['no-agent', 'connection-reset', 'timeout']);
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

type Timer = ReturnType<typeof setTimeout>;

interface CallControl<T> {
  readonly session: Session;
  resolve(value: T): void;
  reject(error: unknown): void;
}

interface CallHandlers {
  frame?(frame: Frame): void;
  hello?(info: AgentInfo): void;
  writable?(): void;
  open?(): void;
}

export class AgentClient {
  private readonly connect: AgentConnector;
  private readonly sessionOptions: SessionOptions;

  constructor(options: AgentClientOptions) {
    if (typeof options?.connect !== 'function') throw new TypeError('AgentClient needs a connect() function');
    this.connect = options.connect;
    this.sessionOptions = { client: options.clientName ?? '@hype/guest-agent', helloTimeoutMs: options.helloTimeoutMs ?? 10_000 };
  }

  /** Connects, exchanges HELLO and closes: resolves when the agent answers (its version and limits). */
  hello(options: { timeoutMs?: number } = {}): Promise<AgentInfo> {
    return this.call<AgentInfo>('HELLO', undefined, options.timeoutMs, (ctl) => ({
      hello: (info) => ctl.resolve(info),
      frame: (frame) => ctl.reject(new AgentError('protocol', `hype-agent sent ${frame.type} after HELLO_ACK to a probe`)),
    }));
  }

  /**
   * Waits until the agent answers: tries `hello()` again (20 ms apart, doubling to 500 ms) while the
   * connection cannot be opened, is reset, or HELLO_ACK is late, as happens while the guest boots. Rejects with `timeout`
   * after `timeoutMs` (default 60 000; the last attempt's error is the `cause`), with `no-agent` when
   * `signal` aborts (e.g. the VM ended), and at once for anything else (a protocol mismatch).
   */
  async ready(options: ReadyOptions = {}): Promise<AgentInfo> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
    const { signal } = options;
    const deadline = Date.now() + timeoutMs;
    let delay = 20;
    let last: unknown;
    for (;;) {
      if (signal?.aborted) throw new AgentError('no-agent', `hype-agent: not reachable: ${abortReason(signal)}`, { cause: last });
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const why = last instanceof Error ? `: ${last.message}` : '';
        throw new AgentError('timeout', `hype-agent did not answer within ${timeoutMs} ms${why}`, { cause: last });
      }
      try {
        return await this.hello({ timeoutMs: remaining });
      } catch (error) {
        // Not up yet (refused, reset), or up but too slow to say HELLO_ACK in time (a loaded guest): try again.
        if (!(error instanceof AgentError) || !RETRYABLE.has(error.kind)) throw error;
        last = error;
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
      delay = Math.min(delay * 2, 500);
    }
  }

  /**
   * Starts a command and streams it: `stdin` (writable), `stdout` / `stderr` (`onData` or `for await`),
   * `started`, `exited`, `kill()`. Synchronous errors (TypeError, RangeError) are for bad arguments;
   * everything else arrives through `started` / `exited` as AgentError.
   */
  spawn(argv: readonly string[], options: SpawnOptions = {}): AgentProcess {
    return new AgentProcess({ connect: this.connect, session: this.sessionOptions }, argv, options);
  }

  /**
   * Runs a command to the end and collects its output. Resolves with the exit status or signal whatever
   * they are; rejects with AgentError when it could not run (`remote`: e.g. ENOENT with op `exec` for no
   * such program, `chdir` for a bad cwd), timed out (`timeout`; the command's process group is killed),
   * wrote more than `maxOutputBytes` (`output-limit`), or the connection failed. A rejection after the
   * start carries the output read until then in `error.partial`.
   */
  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { stdin, maxOutputBytes = DEFAULT_MAX_OUTPUT_BYTES, ...spawnOptions } = options;
    if (!(maxOutputBytes >= 0)) throw new RangeError(`maxOutputBytes must be >= 0, got ${maxOutputBytes}`);
    const child = this.spawn(argv, { ...spawnOptions, stdin: stdin === undefined ? 'ignore' : 'pipe' });
    const stdout: Uint8Array[] = [];
    const stderr: Uint8Array[] = [];
    let total = 0;
    const collect = (into: Uint8Array[]) => (bytes: Uint8Array) => {
      total += bytes.length;
      if (total > maxOutputBytes) {
        child.abort(new AgentError('output-limit', `${argv[0]} wrote more than ${maxOutputBytes} bytes of output; killed`));
        return;
      }
      into.push(bytes);
    };
    child.stdout.onData(collect(stdout));
    child.stderr.onData(collect(stderr));
    let sourceError: { error: unknown } | undefined;
    if (stdin !== undefined && child.stdin !== null) {
      feedStdin(child.stdin, stdin).catch((error: unknown) => {
        sourceError = { error };
        child.abort(new AgentError('connection-reset', `hype-agent: the stdin source failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
      });
    }
    try {
      const status = await child.exited;
      return { stdout: concat(stdout), stderr: concat(stderr), exitCode: status.exitCode, signal: status.signal };
    } catch (error) {
      if (sourceError !== undefined) throw sourceError.error;
      if (error instanceof AgentError) error.partial = { stdout: concat(stdout), stderr: concat(stderr) };
      throw error;
    }
  }

  /** Writes `data` to `path` in the guest (created or truncated; mode applied exactly). */
  writeFile(path: string, data: StdinSource, options: WriteFileOptions = {}): Promise<void> {
    checkPath(path);
    const mode = options.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`mode must be in 0..0o7777, got ${mode}`);
    const request: Frame = { type: 'WRITE_FILE', mode, flags: options.mkdirs ? WriteFileFlags.MKDIRS : 0, path };
    const chunks = dataChunks(data)[Symbol.asyncIterator]();
    return this.call<void>(`writeFile ${path}`, request, options.timeoutMs, (ctl) => {
      let sent = 0;
      let finished = false;
      let pumping = false;
      const pump = async () => {
        if (pumping) return;
        pumping = true;
        try {
          while (!finished && ctl.session.canSend) {
            const next = await chunks.next();
            if (!ctl.session.open) return;
            if (next.done) {
              finished = true;
              ctl.session.send({ type: 'FILE_END' });
            } else {
              sent += next.value.length;
              ctl.session.send({ type: 'FILE_DATA', data: next.value });
            }
          }
        } catch (error) {
          ctl.reject(error);
        } finally {
          pumping = false;
        }
      };
      return {
        open: () => void pump(),
        writable: () => void pump(),
        frame: (frame) => {
          if (frame.type !== 'WRITE_DONE') return ctl.reject(new AgentError('protocol', `hype-agent sent ${frame.type} during WRITE_FILE`));
          if (!finished || frame.bytes !== sent) return ctl.reject(new AgentError('protocol', `hype-agent wrote ${frame.bytes} bytes of ${sent}${finished ? '' : ' before FILE_END'}`));
          ctl.resolve();
        },
      };
    });
  }

  /** Reads `path` in the guest. */
  readFile(path: string, options: ReadFileOptions = {}): Promise<Uint8Array> {
    checkPath(path);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes must be a non-negative integer, got ${maxBytes}`);
    const request: Frame = { type: 'READ_FILE', maxBytes, path };
    return this.call<Uint8Array>(`readFile ${path}`, request, options.timeoutMs, (ctl) => {
      let info: FrameOf<'FILE_INFO'> | undefined;
      const chunks: Uint8Array[] = [];
      let total = 0;
      return {
        frame: (frame) => {
          if (frame.type === 'FILE_INFO' && info === undefined) {
            info = frame;
          } else if (frame.type === 'FILE_DATA' && info !== undefined) {
            total += frame.data.length;
            if (total > maxBytes) return ctl.reject(new AgentError('output-limit', `hype-agent sent more than maxBytes (${maxBytes}) of ${path}`));
            chunks.push(frame.data);
          } else if (frame.type === 'FILE_END' && info !== undefined) {
            ctl.resolve(concat(chunks));
          } else {
            ctl.reject(new AgentError('protocol', `hype-agent sent ${frame.type} ${info === undefined ? 'before FILE_INFO' : 'during READ_FILE'}`));
          }
        },
      };
    });
  }

  /** One request on its own connection, with a timeout covering connect, HELLO and the request. */
  private call<T>(what: string, request: Frame | undefined, timeoutMs: number | undefined, setup: (ctl: CallControl<T>) => CallHandlers): Promise<T> {
    if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let session: Session | undefined;
      let timer: Timer | undefined;
      const settle = (outcome: { error: unknown; graceful?: boolean } | { value: T }) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        if ('value' in outcome) {
          session?.complete();
          resolve(outcome.value);
          return;
        }
        if (outcome.graceful) session?.complete();
        else session?.fail(outcome.error instanceof AgentError ? outcome.error : new AgentError('connection-reset', `hype-agent: ${what} abandoned`));
        reject(outcome.error);
      };
      const ctl: CallControl<T> = {
        get session() {
          return session!;
        },
        resolve: (value) => settle({ value }),
        reject: (error) => settle({ error }),
      };
      const handlers = setup(ctl);
      if (timeoutMs !== undefined) timer = setTimeout(() => settle({ error: new AgentError('timeout', `hype-agent: ${what} timed out after ${timeoutMs} ms`) }), timeoutMs);
      new Promise<AgentStream>((resolveStream) => resolveStream(this.connect())).then(
        (stream) => {
          if (settled) {
            stream.destroy();
            return;
          }
          session = new Session(
            stream,
            {
              frame: (frame) => (frame.type === 'ERROR' ? settle({ error: remoteError(frame), graceful: true }) : handlers.frame?.(frame)),
              fail: (error) => settle({ error }),
              hello: (info) => handlers.hello?.(info),
              writable: () => handlers.writable?.(),
            },
            this.sessionOptions,
          );
          if (request !== undefined) session.send(request);
          handlers.open?.();
        },
        (error: unknown) => settle({ error: noAgent(error) }),
      );
    });
  }
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) throw new TypeError(`path must be a non-empty string without NUL bytes, got ${JSON.stringify(path)}`);
}

/** Concatenates chunks (the only chunk as is). */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Any data source as pieces of at most DATA_CHUNK_SIZE bytes. */
async function* dataChunks(data: StdinSource): AsyncGenerator<Uint8Array> {
  if (typeof data === 'string') data = new TextEncoder().encode(data);
  if (data instanceof Uint8Array) {
    for (let offset = 0; offset < data.length; offset += DATA_CHUNK_SIZE) yield data.subarray(offset, offset + DATA_CHUNK_SIZE);
    return;
  }
  for await (const chunk of data) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('data chunks must be Uint8Arrays');
    for (let offset = 0; offset < chunk.length; offset += DATA_CHUNK_SIZE) yield chunk.subarray(offset, offset + DATA_CHUNK_SIZE);
  }
}

async function feedStdin(stdin: NonNullable<AgentProcess['stdin']>, data: StdinSource): Promise<void> {
  if (typeof data === 'string' || data instanceof Uint8Array) {
    stdin.end(data);
    return;
  }
  for await (const chunk of data) {
    if (!stdin.writable) break;
    if (!(chunk instanceof Uint8Array)) throw new TypeError('stdin chunks must be Uint8Arrays');
    if (!stdin.write(chunk)) await stdin.drained();
  }
  stdin.end();
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
