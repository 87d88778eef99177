#!/usr/bin/env node
// The guest agent over virtio-vsock: `vm.exec(['true'])` round-trip latency and guest stdout throughput,
// against host child processes doing the same, in one run (issue 16).
//
// Boots the default guest in this process with the library (@hype/vm's createVm, a VsockDevice of
// @hype/virtio-vsock, the agent on DEFAULT_AGENT_PORT of @hype/guest-agent), waits for vm.ready(), warms
// up, then measures, interleaved with the baselines (order alternating, so machine load falls on both):
//   - latency: HYPE_BENCH_EXEC_RUNS calls of `await vm.exec(['true'])` (a new agent connection, the
//     command started, its exit status and output collected), p50 and p99; baseline: spawning `true` as a
//     host child process (node's child_process, stdout/stderr on pipes), spawn() to 'close', same count;
//   - throughput: `vm.spawn(['head', '-c', N, '/dev/zero'])` with N = HYPE_BENCH_EXEC_MIB MiB, its stdout
//     read to the end (spawn() to `exited`), MB/s, median of 3; baseline: the host's `head -c N
//     /dev/zero` read through a pipe the same way (spawn() to 'close').
//
// Env: HYPE_BENCH_EXEC_RUNS (default 200), HYPE_BENCH_EXEC_MIB (default 64), HYPE_BENCH_BOOT_TIMEOUT_S
//      (boot to the agent answering, default 300), HYPE_KVM_DEVICE (default /dev/kvm).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { intEnv } from './lib/env.mjs';
import { kvmUnavailableReason, ROOT } from './lib/hype.mjs';
import { emitResult, emitSkipped, row } from './lib/result.mjs';
import { summarize } from './lib/stats.mjs';

const BENCH = 'exec';
const TITLE = "guest agent over virtio-vsock: vm.exec(['true']) and guest stdout vs host child processes";

const unavailable = kvmUnavailableReason();
if (unavailable) {
  emitSkipped(BENCH, TITLE, unavailable);
  process.exit(0);
}

const RUNS = intEnv('HYPE_BENCH_EXEC_RUNS', 200, 1, 1_000_000);
const MIB = intEnv('HYPE_BENCH_EXEC_MIB', 64, 1, 4096);
const TIMEOUT_MS = intEnv('HYPE_BENCH_BOOT_TIMEOUT_S', 300, 1, 86_400) * 1000;
const BYTES = MIB * 1024 * 1024;
const MEM_MIB = 256;
const WARMUP_EXECS = 5;
/** Transfers of each side (guest and host), as ddread's three guest runs. */
const THROUGHPUT_RUNS = 3;
/** One command must not hang the benchmark: far above any plausible time, even under TCG. */
const COMMAND_TIMEOUT_MS = 600_000;

async function load(dir) {
  const entry = join(ROOT, dir, 'dist/index.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`pnpm build\` first (pnpm bench does)`);
  return import(pathToFileURL(entry).href);
}

const [{ createVm }, { VsockDevice }, { DEFAULT_AGENT_PORT }, { ensureDefaultGuest }] = await Promise.all([
  load('packages/vm'),
  load('packages/virtio-vsock'),
  load('packages/guest-agent'),
  load('guest'),
]);

/** The q-quantile (0 < q <= 1) by nearest rank: the smallest sample with at least q of them at or below it. */
function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function latencyStats(samples) {
  return { ...summarize(samples), p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

/** The host baseline of one exec: `true` as a child process, spawn() to 'close' (exited, pipes drained). */
function hostTrue() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`host \`true\` ended with ${signal ?? `exit status ${code}`}`));
      else resolve(ms);
    });
  });
}

/** The host baseline of one transfer: `head -c N /dev/zero` read through a pipe; MB/s, spawn() to 'close'. */
function hostRead(bytes) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('head', ['-c', String(bytes), '/dev/zero'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let total = 0;
    let stderr = '';
    child.stdout.on('data', (chunk) => (total += chunk.length));
    child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`host head -c ${bytes} /dev/zero ended with ${signal ?? `exit status ${code}`}: ${stderr.trim()}`));
      if (total !== bytes) return reject(new Error(`host head -c ${bytes} /dev/zero: read ${total} bytes`));
      resolve(total / seconds / 1e6);
    });
  });
}

// The guest console goes nowhere, but its end is kept for error messages.
let consoleTail = '';
const consoleDecoder = new TextDecoder();
const decoder = new TextDecoder();
const tail = () => (consoleTail.trim() ? `\nguest console (end):\n${consoleTail.trimEnd()}` : '');
const logger = {
  debug() {},
  info() {},
  warn: (message) => process.stderr.write(`exec: vm: ${message}\n`),
  error: (message) => process.stderr.write(`exec: vm: ${message}\n`),
};

/** One `vm.exec(['true'])`: ms from the call to its result. */
async function guestTrue(vm) {
  const t0 = performance.now();
  const r = await vm.exec(['true'], { timeoutMs: COMMAND_TIMEOUT_MS });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`guest \`true\` ended with ${r.signal ?? `exit status ${r.exitCode}`}: ${decoder.decode(r.stderr)}`);
  return ms;
}

/** One guest transfer: `head -c N /dev/zero` streamed through the agent; MB/s, spawn() to `exited`. */
async function guestRead(vm, bytes) {
  const t0 = performance.now();
  const child = vm.spawn(['head', '-c', String(bytes), '/dev/zero'], { stdin: 'ignore', timeoutMs: COMMAND_TIMEOUT_MS });
  let stderr = '';
  child.stderr.onData((chunk) => (stderr = `${stderr}${decoder.decode(chunk)}`.slice(-2000)));
  let total = 0;
  for await (const chunk of child.stdout) total += chunk.length;
  const status = await child.exited;
  const seconds = (performance.now() - t0) / 1000;
  if (status.exitCode !== 0) throw new Error(`guest head -c ${bytes} /dev/zero ended with ${status.signal ?? `exit status ${status.exitCode}`}: ${stderr.trim()}`);
  if (total !== bytes) throw new Error(`guest head -c ${bytes} /dev/zero: read ${total} bytes`);
  return total / seconds / 1e6;
}

/** Runs the steps in order, or reversed on odd rounds. */
async function alternate(i, steps) {
  for (const step of i % 2 === 1 ? [...steps].reverse() : steps) await step();
}

process.stderr.write('exec: making sure the default guest is built (not timed)\n');
const { kernel, initrd } = await ensureDefaultGuest({ progress: (line) => process.stderr.write(`exec: ${line}\n`) });

const vsock = new VsockDevice();
const vm = await createVm(
  { kernel, initrd, memMiB: MEM_MIB, cpus: 1, console: 'hvc', devices: [vsock], agent: () => vsock.connect(DEFAULT_AGENT_PORT) },
  {
    consoleOutput: (bytes) => {
      consoleTail = `${consoleTail}${consoleDecoder.decode(bytes, { stream: true })}`.slice(-4000);
    },
    kvmDevice: process.env.HYPE_KVM_DEVICE || undefined,
    logger,
  },
);
const t0 = performance.now();
let vmExit;
let vmFailure;
// A VMM failure (run() rejects) is reported once the VM is released, after the finally below.
const running = vm.run().then(
  (exit) => (vmExit = exit),
  (error) => (vmFailure = error),
);
let result;
try {
  process.stderr.write('exec: booting the default guest, waiting for its agent\n');
  const info = await vm.ready({ timeoutMs: TIMEOUT_MS }).catch((e) => {
    const ended = vmFailure ? ` (the VMM failed: ${vmFailure.message})` : vmExit ? ` (the VM ended: ${JSON.stringify(vmExit)})` : '';
    throw new Error(`the guest agent did not answer: ${e.message}${ended}${tail()}`);
  });
  const readyMs = performance.now() - t0;
  process.stderr.write(`exec: agent ready after ${(readyMs / 1000).toFixed(1)} s\n`);

  // Warm-up, not counted: the agent's and the host's first forks, page cache, JIT on both paths.
  for (let i = 0; i < WARMUP_EXECS; i++) {
    await guestTrue(vm);
    await hostTrue();
  }
  await guestRead(vm, Math.min(BYTES, 1 << 20));
  await hostRead(Math.min(BYTES, 1 << 20));

  const guestLatency = [];
  const hostLatency = [];
  const every = Math.max(1, Math.round(RUNS / 4));
  for (let i = 0; i < RUNS; i++) {
    await alternate(i, [async () => guestLatency.push(await guestTrue(vm)), async () => hostLatency.push(await hostTrue())]);
    if ((i + 1) % every === 0 || i + 1 === RUNS) {
      process.stderr.write(`exec: ${i + 1}/${RUNS} execs: median so far ${percentile(guestLatency, 0.5).toFixed(2)} ms (guest), ${percentile(hostLatency, 0.5).toFixed(2)} ms (host)\n`);
    }
  }

  const guestMBps = [];
  const hostMBps = [];
  for (let i = 0; i < THROUGHPUT_RUNS; i++) {
    await alternate(i, [async () => guestMBps.push(await guestRead(vm, BYTES)), async () => hostMBps.push(await hostRead(BYTES))]);
    process.stderr.write(`exec: transfer ${i + 1}/${THROUGHPUT_RUNS} of ${MIB} MiB: ${guestMBps.at(-1).toFixed(1)} MB/s (guest), ${hostMBps.at(-1).toFixed(1)} MB/s (host)\n`);
  }

  const guest = latencyStats(guestLatency);
  const host = latencyStats(hostLatency);
  const guestRate = summarize(guestMBps);
  const hostRate = summarize(hostMBps);
  const counted = `${RUNS} execs, nearest rank`;
  result = {
    bench: BENCH,
    title: TITLE,
    status: 'ok',
    rows: [
      row("vm.exec(['true']) round trip, p50", guest.p50, 'ms', 'lower', { name: 'host spawn of true, p50', value: host.p50 }, counted),
      row("vm.exec(['true']) round trip, p99", guest.p99, 'ms', 'lower', { name: 'host spawn of true, p99', value: host.p99 }, counted),
      row(`guest stdout via the agent (head -c, ${MIB} MiB)`, guestRate.median, 'MB/s', 'higher', { name: 'host head -c through a pipe', value: hostRate.median }, `median of ${THROUGHPUT_RUNS} transfers`),
    ],
    data: {
      runs: RUNS,
      warmupExecs: WARMUP_EXECS,
      transferMiB: MIB,
      transferBytes: BYTES,
      guestMemMiB: MEM_MIB,
      cpus: 1,
      agent: info,
      readyMs,
      guestExecMs: guest,
      hostTrueMs: host,
      guestMBps: guestRate,
      hostMBps: hostRate,
      node: process.version,
    },
  };
} finally {
  vm.stop();
  await running;
}
if (vmFailure) throw vmFailure;
emitResult(result);
