// Running the built `hype` CLI (and bare node baselines) as timed child processes, for the KVM benchmarks.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The hype CLI to benchmark: the built one, or another build given in HYPE_BENCH_HYPE_BIN. */
export const HYPE_BIN = process.env.HYPE_BENCH_HYPE_BIN || join(ROOT, 'apps/cli/dist/bin.cjs');

/** The `--timings` line hype writes to stderr: `hype-timing {"event":"...","ms":...}` (bench/README.md). */
export const TIMING_PREFIX = 'hype-timing ';
export const TIMING_EVENTS = ['vm-ram', 'vm-devices', 'vm-loaded', 'vm-created', 'first-kvm-run', 'boot-marker', 'exit'];

/** The timing event of one stderr line, or undefined if the line is not one (or is malformed). */
export function parseTimingLine(line) {
  const text = line.replace(/\r$/, '');
  if (!text.startsWith(TIMING_PREFIX)) return undefined;
  let event;
  try {
    event = JSON.parse(text.slice(TIMING_PREFIX.length));
  } catch {
    return undefined;
  }
  if (event === null || typeof event !== 'object' || typeof event.event !== 'string') return undefined;
  if (typeof event.ms !== 'number' || !Number.isFinite(event.ms)) return undefined;
  return event;
}

/**
 * Whether this host's /dev/kvm is kvm_pvm's, decided as @hype/vm decides its host quirks: HYPE_HOST_QUIRKS
 * pvm (yes) or off (no), else whether the kvm_pvm module is loaded.
 */
export function kvmIsPvm(env = process.env, exists = existsSync) {
  const mode = env.HYPE_HOST_QUIRKS || 'auto';
  return mode === 'pvm' || (mode === 'auto' && exists('/sys/module/kvm_pvm'));
}

/** Why the KVM benchmarks cannot run here, or undefined when they can. */
export function kvmUnavailableReason(env = process.env) {
  const device = env.HYPE_KVM_DEVICE || '/dev/kvm';
  if (!existsSync(device)) return `needs ${device} (absent on this host)`;
  try {
    accessSync(device, constants.R_OK | constants.W_OK);
  } catch {
    return `needs read-write access to ${device} (sudo usermod -aG kvm $USER)`;
  }
  return undefined;
}

/** Throws unless the CLI is built. */
export function requireBuiltCli() {
  if (!existsSync(HYPE_BIN)) throw new Error(`${HYPE_BIN} is missing: run \`pnpm build\` first (pnpm bench does)`);
}

/**
 * Builds (or finds cached) the default guest, outside any timing: `hype guest build`. Its progress
 * goes to our stderr; a failure throws with the command's exit status.
 */
export function ensureDefaultGuest() {
  const r = spawnSync(process.execPath, [HYPE_BIN, 'guest', 'build'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.error) throw new Error(`hype guest build: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`hype guest build failed with exit status ${r.status} (its messages are above)`);
  return r.stdout;
}

const MAX_CAPTURE = 4 << 20;

/**
 * A child process whose stdout/stderr are captured and whose `hype-timing` events are collected with
 * the parent's wall time since spawn (`wallMs`, performance.now() based) next to the child's own `ms`.
 */
export class TimedChild {
  constructor(args, { label = 'child', stdin = 'pipe', env } = {}) {
    this.label = label;
    this.events = [];
    this.stdout = '';
    this.stderr = '';
    this.waiters = new Set();
    this.t0 = performance.now();
    this.child = spawn(process.execPath, args, { stdio: [stdin, 'pipe', 'pipe'], env: env ?? process.env });
    this.pid = this.child.pid;
    let errBuf = '';
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => {
      const now = performance.now() - this.t0;
      if (this.stderr.length < MAX_CAPTURE) this.stderr += chunk;
      errBuf += chunk;
      let nl;
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        const line = errBuf.slice(0, nl);
        errBuf = errBuf.slice(nl + 1);
        const event = parseTimingLine(line);
        if (event) this.events.push({ ...event, wallMs: now });
      }
      this.check();
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      if (this.stdout.length < MAX_CAPTURE) this.stdout += chunk;
      this.check();
    });
    this.child.stdin?.on('error', () => {}); // the child may exit before reading what we wrote
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.exit = { code: null, signal: null, error, wallMs: performance.now() - this.t0 };
        this.check();
        resolve(this.exit);
      });
      this.child.on('close', (code, signal) => {
        this.exit ??= { code, signal, wallMs: performance.now() - this.t0 };
        this.check();
        resolve(this.exit);
      });
    });
  }

  check() {
    for (const w of [...this.waiters]) {
      const value = w.predicate(this);
      if (value !== undefined && value !== false) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(value);
      } else if (this.exit) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.reject(new Error(`${this.label} exited (${describeExit(this.exit)}) before ${w.what}${this.tail()}`));
      }
    }
  }

  /** Resolves with predicate(this) once it is truthy; rejects on exit or after timeoutMs. */
  waitFor(what, predicate, timeoutMs) {
    return new Promise((resolve, reject) => {
      const w = { what, predicate, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs / 1000} s${this.tail()}`));
      }, timeoutMs);
      this.waiters.add(w);
      this.check();
    });
  }

  /** The first timing event named `name` (and with `value`, if given). */
  event(name, value) {
    return this.events.find((e) => e.event === name && (value === undefined || e.value === value));
  }

  /** Waits for the exit; on timeout sends SIGTERM, then SIGKILL, and rejects. */
  async waitExit(timeoutMs) {
    let timer;
    const timeout = new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs, 'timeout')));
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (r !== 'timeout') return r;
    await this.kill();
    throw new Error(`${this.label} did not exit within ${timeoutMs / 1000} s${this.tail()}`);
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the child is gone. */
  async kill(graceMs = 5000) {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }

  write(text) {
    this.child.stdin.write(text);
  }

  /** The end of the child's output, for error messages. */
  tail(chars = 2000) {
    const cut = (s) => (s.length > chars ? `...${s.slice(-chars)}` : s);
    const parts = [];
    if (this.stderr.trim()) parts.push(`stderr:\n${cut(this.stderr.trimEnd())}`);
    if (this.stdout.trim()) parts.push(`stdout (guest console):\n${cut(this.stdout.trimEnd())}`);
    return parts.length ? `\n${parts.join('\n')}` : '';
  }
}

export function describeExit(exit) {
  if (exit.error) return `spawn failed: ${exit.error.message}`;
  return exit.signal ? `signal ${exit.signal}` : `exit status ${exit.code}`;
}

/** `hype run --timings ...args` as a TimedChild. */
export function startHype(args, options = {}) {
  return new TimedChild([HYPE_BIN, 'run', '--timings', ...args], { label: 'hype', ...options });
}

/** Throws with the child's output unless it exited with status 0. */
export function expectCleanExit(child, exit) {
  if (exit.code !== 0) throw new Error(`${child.label} ended with ${describeExit(exit)}, expected exit status 0${child.tail()}`);
}

/**
 * One bare `node -e 0`: the parent's wall time from spawn to exit (ms). The same spawn path as hype's,
 * so the ratio compares like with like.
 */
export async function bareNodeWallMs() {
  const child = new TimedChild(['-e', '0'], { label: 'node -e 0', stdin: 'ignore' });
  const exit = await child.waitExit(60_000);
  expectCleanExit(child, exit);
  return exit.wallMs;
}

/**
 * One bare node that reports, on its own clock like hype's timings, when its first line of user code
 * runs: ms since performance.timeOrigin (process start).
 */
export async function bareNodeUserCodeMs() {
  const script = `process.stderr.write('${TIMING_PREFIX}' + JSON.stringify({ event: 'user-code', ms: performance.now() }) + '\\n')`;
  const child = new TimedChild(['-e', script], { label: 'node -e (user-code timing)', stdin: 'ignore' });
  const exit = await child.waitExit(60_000);
  expectCleanExit(child, exit);
  const event = child.event('user-code');
  if (!event) throw new Error(`bare node printed no user-code timing${child.tail()}`);
  return event.ms;
}
