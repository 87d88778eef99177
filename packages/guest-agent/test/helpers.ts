// The real agent on the host: guest/agent/hype-agent.c compiled with gcc (as the guest build does) into a
// temporary directory and run with --unix; and a raw connection for speaking the protocol by hand.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileAgent } from '@hype/guest';
import { expect } from 'vitest';
import { AgentError, encodeFrame, FrameDecoder, type Frame } from '../src/index.js';

export const hasGcc = spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status === 0;

let compiled: { dir: string; binary: string } | undefined;

/**
 * The agent binary, compiled once per test file; `HYPE_AGENT_BINARY=<path>` tests another build instead
 * (e.g. one with `-fsanitize=address,undefined`).
 */
export function agentBinary(): string {
  if (process.env.HYPE_AGENT_BINARY) return process.env.HYPE_AGENT_BINARY;
  if (compiled === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'hype-agent-test-'));
    const binary = join(dir, 'hype-agent');
    compileAgent({ out: binary });
    compiled = { dir, binary };
  }
  return compiled.binary;
}

export function removeAgentBinary(): void {
  if (compiled !== undefined) rmSync(compiled.dir, { recursive: true, force: true });
  compiled = undefined;
}

export interface RunningAgent {
  readonly socket: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** What the agent printed on stderr (with -v: each connection's errors). */
  stderr(): string;
  stop(): Promise<void>;
}

/** Starts `hype-agent --unix <dir>/agent.sock [args]` and waits until it listens. */
export async function startAgent(dir: string, args: string[] = []): Promise<RunningAgent> {
  const socket = join(dir, `agent-${Math.random().toString(36).slice(2, 8)}.sock`);
  const child = spawn(agentBinary(), ['--unix', socket, '-v', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`hype-agent exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`hype-agent did not create ${socket}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    socket,
    child,
    pid: child.pid!,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Whether a process exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The parent pid of a process. */
export function parentPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** A field of /proc/<pid>/status in kB (VmHWM, VmRSS), or undefined once the process is gone. */
export function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A plain Unix-socket connection speaking frames by hand (to send what AgentClient never would). */
export class RawConnection {
  private readonly decoder = new FrameDecoder();
  private readonly frames: Frame[] = [];
  private waiting: (() => void) | undefined;
  ended = false;
  error: Error | undefined;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.frames.push(...this.decoder.push(chunk));
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  static open(path: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path, allowHalfOpen: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
    });
  }

  send(frame: Frame | Uint8Array): void {
    this.socket.write(frame instanceof Uint8Array ? frame : encodeFrame(frame));
  }

  /** The next frame, or `end` once the agent closed its side. */
  async next(timeoutMs = 10_000): Promise<Frame | 'end'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.ended) return 'end';
      if (Date.now() > deadline) throw new Error('no frame from the agent in time');
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
    }
  }

  /** Frames until the agent closes (the frames of a finished request). */
  async rest(timeoutMs = 10_000): Promise<Frame[]> {
    const out: Frame[] = [];
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (frame === 'end') return out;
      out.push(frame);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }
}

/** The AgentError a promise rejects with (fails the test if it resolves or rejects with anything else). */
export async function rejection(promise: Promise<unknown>): Promise<AgentError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AgentError);
    return error as AgentError;
  }
  throw new Error('expected a rejection');
}
