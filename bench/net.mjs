#!/usr/bin/env node
// virtio-net: guest-to-host TCP throughput and host-to-guest TCP round-trip latency per network backend
// (user = passt, tap = a TAP interface), against the same transfers between two host processes on
// loopback, interleaved in the same run (issue 17).
//
// Boots the default guest once in this process with the library (@hype/vm's createVm; a VirtioNetDevice
// per backend: eth0 on passt via startPasst(), eth1 on a TAP interface via openTapBackend(); a
// VsockDevice for the guest agent), 256 MiB, 1 vCPU, booted with `hype.dhcp=off`: the bench gives the
// NICs their addresses itself through the agent (`ip addr add`), so the measurement does not depend on
// the guest's DHCP client: the passt NIC 10.0.2.15/24 (what passt's DHCP hands out; the gateway 10.0.2.2
// is the host's loopback), the TAP NIC 10.1.0.2/24 (the host side of the TAP is 10.1.0.1/24). Then, per
// backend, interleaved one by one with the baseline (order alternating, so machine load falls on both):
//   - throughput, guest -> host: a node:net server on the host (127.0.0.1 for user, reached by the guest
//     as 10.0.2.2; 10.1.0.1 for tap) counts the bytes of one connection; the guest runs `head -c N
//     /dev/zero | nc HOST PORT` through vm.exec. Timed on the host from the first byte received to the
//     N-th (not the exec's start, not the connection set-up); exactly N bytes are checked. MB/s, median
//     of 3. Baseline: the same busybox command as a host child process (`busybox head -c N /dev/zero |
//     busybox nc 127.0.0.1 PORT`) to the same kind of server on loopback, timed the same way.
//   - round trip, host -> guest: the guest runs an echo server (busybox `nc -l -p 7000 -e cat`, started
//     through vm.spawn); the host connects (user: 127.0.0.1:P published by passt to guest port 7000;
//     tap: 10.1.0.2:7000), TCP_NODELAY, and does K ping-pongs of 1 byte in that one connection, each
//     timed with performance.now() from write() to the echoed byte's 'data' event; after 10 warm-up
//     ping-pongs, 3 sessions (a new echo server and connection each), all samples pooled: p50 and p99
//     in µs by nearest rank. Baseline: the same with a host child `busybox nc -l -p P -e busybox cat`
//     on loopback (it listens on all host addresses while it waits for its one connection).
// Both sides of every ratio use the same busybox nc/head/cat code (the guest's busybox is the host's
// busybox-static) and the same host-side measuring code, so the ratio is the cost of the guest path:
// the guest's TCP stack and virtio-net driver, the virtio-net device model, and the backend (passt's
// user-mode TCP translation, or the host kernel's TAP interface and bridge-less routing to 10.1.0.1).
//
// The tap backend runs only as root with /dev/net/tun, and only inside the nested rig
// (scripts/kvm-in-qemu.sh, whose throw-away L1 it may change) or with HYPE_BENCH_NET_TAP=1: it creates
// the TAP interface `hypebench0` with 10.1.0.1/24 on this machine (`ip tuntap add`, deleted at the end).
// A backend that cannot run here (passt missing or failing to start, e.g. without a default route; no
// TAP) gets a skipped row with the reason; with neither, the benchmark is skipped.
//
// Env: HYPE_BENCH_NET_MIB (bytes per transfer, MiB, default 8), HYPE_BENCH_NET_RTTS (ping-pongs per
//      session, default 200), HYPE_BENCH_NET_BACKENDS (default `user,tap`), HYPE_BENCH_NET_TAP (1: allow
//      the TAP interface outside the rig), HYPE_BENCH_BOOT_TIMEOUT_S (boot to the agent answering,
//      default 300), HYPE_KVM_DEVICE (default /dev/kvm).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { intEnv } from './lib/env.mjs';
import { kvmUnavailableReason, ROOT } from './lib/hype.mjs';
import { emitResult, emitSkipped, row, skippedRow } from './lib/result.mjs';
import { summarize } from './lib/stats.mjs';
import { formatTable } from './lib/table.mjs';

const BENCH = 'net';
const TITLE = 'virtio-net: guest-to-host TCP throughput and host-to-guest TCP round trip per backend vs two host processes on loopback';

const unavailable = kvmUnavailableReason();
if (unavailable) {
  emitSkipped(BENCH, TITLE, unavailable);
  process.exit(0);
}

const MIB = intEnv('HYPE_BENCH_NET_MIB', 8, 1, 4096);
const RTTS = intEnv('HYPE_BENCH_NET_RTTS', 200, 1, 1_000_000);
const TIMEOUT_MS = intEnv('HYPE_BENCH_BOOT_TIMEOUT_S', 300, 1, 86_400) * 1000;
const BACKENDS = (process.env.HYPE_BENCH_NET_BACKENDS || 'user,tap').split(',').map((b) => b.trim()).filter(Boolean);
for (const b of BACKENDS) {
  if (b !== 'user' && b !== 'tap') throw new RangeError(`HYPE_BENCH_NET_BACKENDS=${process.env.HYPE_BENCH_NET_BACKENDS}: each must be user or tap`);
}
const BYTES = MIB * 1024 * 1024;
const MEM_MIB = 256;
/** Transfers of each side per backend. */
const THROUGHPUT_RUNS = 3;
/** Echo sessions of each side per backend (RTTS ping-pongs each, pooled). */
const RTT_SESSIONS = 3;
const WARMUP_PINGS = 10;
const WARMUP_BYTES = Math.min(BYTES, 1 << 20);
/** The guest's echo port (passt publishes a free host port to it). */
const GUEST_ECHO_PORT = 7000;
/** One command or connection must not hang the benchmark: far above any plausible time, even under TCG. */
const COMMAND_TIMEOUT_MS = 600_000;
/** How long the host keeps trying to reach a freshly started echo server. */
const ECHO_CONNECT_MS = 60_000;

const TAP_NAME = 'hypebench0';
const TAP_HOST = '10.1.0.1';
const TAP_GUEST = '10.1.0.2';
const TAP_PREFIX = 24;
const USER_GUEST = '10.0.2.15';
const USER_GATEWAY = '10.0.2.2';
const MACS = { user: '52:54:00:68:79:01', tap: '52:54:00:68:79:02' };
/** scripts/kvm-in-qemu.sh bind-mounts its share here in L1 (apps/cli/rig/kvm-in-qemu.sh). */
const IN_RIG = existsSync('/run/kvm-in-qemu/cmd.sh');

const log = (line) => process.stderr.write(`net: ${line}\n`);

async function load(dir, entry = 'index.js') {
  const path = join(ROOT, dir, 'dist', entry);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`pnpm build\` first (pnpm bench does)`);
  return import(pathToFileURL(path).href);
}

const busybox = spawnSync('busybox', ['nc', '--help'], { encoding: 'utf8' });
if (busybox.error || !/-e PROG/.test(`${busybox.stdout}${busybox.stderr}`)) {
  emitSkipped(BENCH, TITLE, 'needs busybox with nc -e on the host (apt-get install busybox-static) for the baselines');
  process.exit(0);
}

const [{ createVm }, { VsockDevice }, { DEFAULT_AGENT_PORT }, { ensureDefaultGuest }, { VirtioNetDevice }, { startPasst, openTapBackend }] = await Promise.all([
  load('packages/vm'),
  load('packages/virtio-vsock'),
  load('packages/guest-agent'),
  load('guest'),
  load('packages/virtio-net'),
  load('packages/virtio-net', 'node.js'),
]);

/** The q-quantile (0 < q <= 1) by nearest rank. */
function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function latencyStats(samples) {
  const { samples: _all, ...rest } = summarize(samples);
  return { ...rest, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

/** Runs the steps in order, or reversed on odd rounds. */
async function alternate(i, steps) {
  for (const step of i % 2 === 1 ? [...steps].reverse() : steps) await step();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no end within ${ms / 1000} s`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A free TCP port on 127.0.0.1 (released again at once). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---- the host side of the throughput transfers ----------------------------------------------------

/**
 * A server on `host` (port 0) that takes one connection and counts its bytes: `done` resolves with
 * { bytes, ms } (first byte to the `expected`-th, or to the last if fewer came) once the peer ends.
 */
async function byteSink(host, expected) {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const done = new Promise((resolve, reject) => {
    server.once('connection', (socket) => {
      let bytes = 0;
      let first;
      let last;
      socket.on('data', (chunk) => {
        const now = performance.now();
        if (bytes === 0) first = now;
        bytes += chunk.length;
        if (last === undefined && bytes >= expected) last = now;
      });
      socket.on('error', reject);
      socket.on('end', () => {
        socket.end();
        resolve({ bytes, ms: (last ?? performance.now()) - (first ?? performance.now()) });
      });
    });
  });
  done.catch(() => {});
  return { port: server.address().port, done, close: () => server.close() };
}

function rate(bytes, received, who) {
  if (received.bytes !== bytes) throw new Error(`${who}: the host received ${received.bytes} bytes, expected ${bytes}`);
  return bytes / (received.ms / 1000) / 1e6;
}

/** The guest sends `bytes` to the host through backend `b`; MB/s, first to last byte on the host. */
async function guestSend(vm, b, bytes) {
  const sink = await byteSink(b.hostBind, bytes);
  try {
    const command = `head -c ${bytes} /dev/zero | nc ${b.hostFromGuest} ${sink.port}`;
    const exec = vm.exec(['sh', '-c', command], { timeoutMs: COMMAND_TIMEOUT_MS }).then((r) => {
      if (r.exitCode !== 0) {
        throw new Error(`guest \`${command}\` ended with ${r.signal ?? `exit status ${r.exitCode}`}: ${new TextDecoder().decode(r.stderr).trim()}`);
      }
    });
    const [received] = await Promise.all([withTimeout(sink.done, COMMAND_TIMEOUT_MS, `${b.name}: guest transfer`), exec]);
    return rate(bytes, received, `${b.name}: guest transfer`);
  } finally {
    sink.close();
  }
}

/** The baseline: a host child process sends `bytes` over loopback with the same busybox commands. */
async function hostSend(bytes) {
  const sink = await byteSink('127.0.0.1', bytes);
  try {
    const command = `busybox head -c ${bytes} /dev/zero | busybox nc 127.0.0.1 ${sink.port}`;
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
    const exited = new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (code !== 0) reject(new Error(`host \`${command}\` ended with ${signal ?? `exit status ${code}`}: ${stderr.trim()}`));
        else resolve();
      });
    });
    const [received] = await Promise.all([withTimeout(sink.done, COMMAND_TIMEOUT_MS, 'host transfer'), exited]);
    return rate(bytes, received, 'host transfer');
  } finally {
    sink.close();
  }
}

// ---- the host side of the round trips -----------------------------------------------------------

/**
 * Connects to an echo server that may not listen yet, and checks it echoes: retries (a refused or reset
 * connection: passt accepts on the host and resets once the guest refuses) until one byte comes back.
 * Resolves with a ping-pong function over the connection.
 */
async function connectEcho(host, port, what) {
  const deadline = performance.now() + ECHO_CONNECT_MS;
  let lastError = 'no attempt';
  while (performance.now() < deadline) {
    const socket = await new Promise((resolve) => {
      const s = connect({ host, port, noDelay: true });
      let settled = false;
      const fail = (why) => {
        if (settled) return;
        settled = true;
        lastError = why;
        s.destroy();
        resolve(undefined);
      };
      s.once('error', (e) => fail(e.code ?? e.message));
      s.once('close', () => fail('closed before echoing'));
      s.once('connect', () => s.write('x'));
      s.once('data', (chunk) => {
        if (settled) return;
        settled = true;
        s.removeAllListeners('close');
        s.removeAllListeners('error');
        if (chunk.length !== 1) {
          s.destroy();
          lastError = `echoed ${chunk.length} bytes for 1`;
          resolve(undefined);
        } else resolve(s);
      });
    });
    if (socket) return pingPonger(socket, what);
    await sleep(100);
  }
  throw new Error(`${what}: no echo from ${host}:${port} within ${ECHO_CONNECT_MS / 1000} s (last: ${lastError})`);
}

function pingPonger(socket, what) {
  let received = 0;
  let wanted = 0;
  let waiter;
  let failure;
  const wake = () => {
    if (waiter && (received >= wanted || failure)) {
      const w = waiter;
      waiter = undefined;
      if (failure) w.reject(failure);
      else w.resolve(performance.now());
    }
  };
  socket.on('data', (chunk) => {
    received += chunk.length;
    wake();
  });
  socket.on('error', (e) => {
    failure ??= new Error(`${what}: ${e.message}`);
    wake();
  });
  socket.on('close', () => {
    failure ??= new Error(`${what}: the echo connection closed`);
    wake();
  });
  const ping = () =>
    new Promise((resolve, reject) => {
      if (failure) return reject(failure);
      wanted++;
      waiter = { resolve, reject };
      socket.write('x');
    });
  return {
    /** `count` ping-pongs of 1 byte; µs each. */
    async run(count) {
      const samples = [];
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        const t1 = await ping();
        samples.push((t1 - t0) * 1000);
      }
      if (received !== wanted) throw new Error(`${what}: ${received} bytes echoed for ${wanted} sent`);
      return samples;
    },
    close: () =>
      new Promise((resolve) => {
        socket.once('close', resolve);
        socket.end();
        setTimeout(() => socket.destroy(), 10_000).unref();
      }),
  };
}

/** One echo session against the guest's echo server on backend `b`: RTTS round trips, µs. */
async function guestEchoSession(vm, b, warmup) {
  const child = vm.spawn(['nc', '-l', '-p', String(GUEST_ECHO_PORT), '-e', 'cat'], { stdin: 'ignore', timeoutMs: COMMAND_TIMEOUT_MS });
  let stderr = '';
  const decoder = new TextDecoder();
  child.stdout.onData(() => {});
  child.stderr.onData((chunk) => (stderr = `${stderr}${decoder.decode(chunk)}`.slice(-2000)));
  try {
    await child.started;
    const echo = await connectEcho(b.echoHost, b.echoPort, `${b.name}: guest echo`);
    if (warmup) await echo.run(WARMUP_PINGS);
    const samples = await echo.run(RTTS);
    await echo.close();
    const status = await child.exited;
    if (status.exitCode !== 0) throw new Error(`guest echo server ended with ${status.signal ?? `exit status ${status.exitCode}`}: ${stderr.trim()}`);
    return samples;
  } catch (error) {
    child.kill('SIGKILL');
    await child.exited.catch(() => {});
    throw new Error(`${error.message}${stderr.trim() ? ` (guest nc: ${stderr.trim()})` : ''}`, { cause: error });
  }
}

/** The baseline session: a host child `busybox nc -l -p P -e busybox cat` on loopback, RTTS round trips, µs. */
async function hostEchoSession(warmup) {
  const port = await freePort();
  const child = spawn('busybox', ['nc', '-l', '-p', String(port), '-e', 'busybox', 'cat'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  try {
    const echo = await connectEcho('127.0.0.1', port, 'host echo');
    if (warmup) await echo.run(WARMUP_PINGS);
    const samples = await echo.run(RTTS);
    await echo.close();
    const { code, signal } = await withTimeout(exited, 30_000, 'host echo server');
    if (code !== 0) throw new Error(`host echo server ended with ${signal ?? `exit status ${code}`}: ${stderr.trim()}`);
    return samples;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

// ---- backends -------------------------------------------------------------------------------------

function ip(args) {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`ip ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Why the TAP backend cannot run here, or undefined. */
function tapUnavailableReason() {
  if (!IN_RIG && process.env.HYPE_BENCH_NET_TAP !== '1') {
    return `creates the TAP interface ${TAP_NAME} (${TAP_HOST}/${TAP_PREFIX}) on this machine: runs only inside the nested rig or with HYPE_BENCH_NET_TAP=1`;
  }
  if (process.getuid?.() !== 0) return 'needs root (CAP_NET_ADMIN) to create a TAP interface';
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun (modprobe tun)';
  const probe = spawnSync('ip', ['link', 'show', TAP_NAME], { encoding: 'utf8' });
  if (probe.error) return `needs the ip command (iproute2): ${probe.error.message}`;
  if (probe.status === 0) return `an interface ${TAP_NAME} exists already (delete it: ip link del ${TAP_NAME})`;
  return undefined;
}

let tapCreated = false;
function deleteTap() {
  if (!tapCreated) return;
  tapCreated = false;
  spawnSync('ip', ['link', 'del', TAP_NAME]);
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    deleteTap();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

const skipped = {};
const nics = [];
const backends = [];
if (BACKENDS.includes('user')) {
  const echoPort = await freePort();
  try {
    const passt = await startPasst({
      publish: [{ protocol: 'tcp', hostPort: echoPort, guestPort: GUEST_ECHO_PORT, hostAddress: '127.0.0.1' }],
      log: (line) => log(line),
    });
    nics.push(new VirtioNetDevice({ backend: passt, mac: MACS.user }));
    backends.push({ name: 'user', mac: MACS.user, guestAddress: USER_GUEST, prefix: 24, hostBind: '127.0.0.1', hostFromGuest: USER_GATEWAY, echoHost: '127.0.0.1', echoPort, passtPid: passt.pid });
  } catch (error) {
    skipped.user = `passt did not start: ${error.message}`;
  }
}
if (BACKENDS.includes('tap')) {
  const reason = tapUnavailableReason();
  if (reason) {
    skipped.tap = reason;
  } else {
    try {
      ip(['tuntap', 'add', 'dev', TAP_NAME, 'mode', 'tap']);
      tapCreated = true;
      ip(['addr', 'add', `${TAP_HOST}/${TAP_PREFIX}`, 'dev', TAP_NAME]);
      ip(['link', 'set', TAP_NAME, 'up']);
      const tap = await openTapBackend(TAP_NAME);
      nics.push(new VirtioNetDevice({ backend: tap, mac: MACS.tap }));
      backends.push({ name: 'tap', mac: MACS.tap, guestAddress: TAP_GUEST, prefix: TAP_PREFIX, hostBind: TAP_HOST, hostFromGuest: TAP_HOST, echoHost: TAP_GUEST, echoPort: GUEST_ECHO_PORT });
    } catch (error) {
      deleteTap();
      skipped.tap = `no TAP interface: ${error.message}`;
    }
  }
}
if (backends.length === 0) {
  emitSkipped(BENCH, TITLE, Object.entries(skipped).map(([b, why]) => `${b}: ${why}`).join('; ') || 'no backend selected');
  process.exit(0);
}

// ---- the VM ---------------------------------------------------------------------------------------

let consoleTail = '';
const consoleDecoder = new TextDecoder();
const decoder = new TextDecoder();
const tail = () => (consoleTail.trim() ? `\nguest console (end):\n${consoleTail.trimEnd()}` : '');
const logger = {
  debug() {},
  info() {},
  warn: (message) => log(`vm: ${message}`),
  error: (message) => log(`vm: ${message}`),
};

async function guestSh(vm, script) {
  const r = await vm.exec(['sh', '-c', script], { timeoutMs: COMMAND_TIMEOUT_MS });
  if (r.exitCode !== 0) throw new Error(`guest \`${script}\` ended with ${r.signal ?? `exit status ${r.exitCode}`}: ${decoder.decode(r.stderr).trim()}`);
  return decoder.decode(r.stdout);
}

let result;
try {
  log('making sure the default guest is built (not timed)');
  const { kernel, initrd } = await ensureDefaultGuest({ progress: (line) => log(line) });
  const vsock = new VsockDevice();
  const vm = await createVm(
    {
      kernel,
      initrd,
      memMiB: MEM_MIB,
      cpus: 1,
      console: 'hvc',
      // The addresses are set below through the agent (no DHCP wait at boot, none on the TAP NIC).
      cmdline: 'hype.dhcp=off',
      devices: [...nics, vsock],
      agent: () => vsock.connect(DEFAULT_AGENT_PORT),
    },
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
  const running = vm.run().then(
    (exit) => (vmExit = exit),
    (error) => (vmFailure = error),
  );
  try {
    log(`booting the default guest (${backends.map((b) => b.name).join(' + ')}), waiting for its agent`);
    const info = await vm.ready({ timeoutMs: TIMEOUT_MS }).catch((e) => {
      const ended = vmFailure ? ` (the VMM failed: ${vmFailure.message})` : vmExit ? ` (the VM ended: ${JSON.stringify(vmExit)})` : '';
      throw new Error(`the guest agent did not answer: ${e.message}${ended}${tail()}`);
    });
    const readyMs = performance.now() - t0;
    log(`agent ready after ${(readyMs / 1000).toFixed(1)} s`);

    // Which guest interface is which backend's: by MAC.
    const ifaces = new Map();
    for (const line of (await guestSh(vm, 'for d in /sys/class/net/*; do echo "${d##*/} $(cat $d/address)"; done')).split('\n')) {
      const [name, mac] = line.trim().split(' ');
      if (name && mac) ifaces.set(mac.toLowerCase(), name);
    }
    for (const b of backends) {
      b.iface = ifaces.get(b.mac);
      if (!b.iface) throw new Error(`no guest interface with MAC ${b.mac} (${b.name}); the guest has: ${[...ifaces].map(([m, n]) => `${n} ${m}`).join(', ')}`);
    }
    for (const b of backends) {
      await guestSh(vm, `ip addr add ${b.guestAddress}/${b.prefix} dev ${b.iface} && ip link set ${b.iface} up`);
      log(`${b.name}: guest ${b.iface}: ${(await guestSh(vm, `ip -4 -o addr show dev ${b.iface}`)).trim().replace(/\s+/g, ' ')}`);
    }

    const measured = {};
    for (const b of backends) {
      // Warm-up, not counted: ARP, the first connections, page cache, JIT on both paths.
      await guestSend(vm, b, WARMUP_BYTES);
      await hostSend(WARMUP_BYTES);

      const guestMBps = [];
      const hostMBps = [];
      for (let i = 0; i < THROUGHPUT_RUNS; i++) {
        await alternate(i, [async () => guestMBps.push(await guestSend(vm, b, BYTES)), async () => hostMBps.push(await hostSend(BYTES))]);
        log(`${b.name}: transfer ${i + 1}/${THROUGHPUT_RUNS} of ${MIB} MiB: ${guestMBps.at(-1).toFixed(1)} MB/s (guest to host), ${hostMBps.at(-1).toFixed(1)} MB/s (host to host)`);
      }

      const guestRtt = [];
      const hostRtt = [];
      for (let i = 0; i < RTT_SESSIONS; i++) {
        await alternate(i, [async () => guestRtt.push(...(await guestEchoSession(vm, b, i === 0))), async () => hostRtt.push(...(await hostEchoSession(i === 0)))]);
        log(`${b.name}: echo session ${i + 1}/${RTT_SESSIONS}: p50 so far ${percentile(guestRtt, 0.5).toFixed(0)} µs (host to guest), ${percentile(hostRtt, 0.5).toFixed(0)} µs (host to host)`);
      }
      measured[b.name] = {
        guestIface: b.iface,
        guestMBps: summarize(guestMBps),
        hostMBps: summarize(hostMBps),
        guestRttUs: latencyStats(guestRtt),
        hostRttUs: latencyStats(hostRtt),
      };
    }

    const rows = [];
    for (const name of BACKENDS) {
      const m = measured[name];
      if (!m) {
        rows.push(skippedRow(`${name}: TCP throughput and round trip`, skipped[name] ?? 'not run'));
        continue;
      }
      const counted = `${RTT_SESSIONS} sessions of ${RTTS} ping-pongs, nearest rank`;
      rows.push(
        row(`${name}: guest to host TCP (nc, ${MIB} MiB)`, m.guestMBps.median, 'MB/s', 'higher', { name: 'host to host on loopback (busybox nc)', value: m.hostMBps.median }, `median of ${THROUGHPUT_RUNS} transfers, first to last byte received`),
        row(`${name}: host to guest TCP round trip, 1 byte, p50`, m.guestRttUs.p50, 'µs', 'lower', { name: 'host to host on loopback, p50', value: m.hostRttUs.p50 }, counted),
        row(`${name}: host to guest TCP round trip, 1 byte, p99`, m.guestRttUs.p99, 'µs', 'lower', { name: 'host to host on loopback, p99', value: m.hostRttUs.p99 }, counted),
      );
    }
    result = {
      bench: BENCH,
      title: TITLE,
      status: 'ok',
      rows,
      data: {
        transferMiB: MIB,
        transferBytes: BYTES,
        throughputRuns: THROUGHPUT_RUNS,
        rttsPerSession: RTTS,
        rttSessions: RTT_SESSIONS,
        warmupPings: WARMUP_PINGS,
        guestMemMiB: MEM_MIB,
        cpus: 1,
        inRig: IN_RIG,
        agent: info,
        readyMs,
        skipped,
        backends: measured,
        node: process.version,
      },
    };
  } catch (error) {
    // The guest's view of its network, for the error message (when the agent still answers).
    const state = await vm
      .exec(['sh', '-c', 'ip addr; ip route; ip neigh; cat /proc/net/dev'], { timeoutMs: 30_000 })
      .then((r) => `\nguest network:\n${decoder.decode(r.stdout).trimEnd()}`)
      .catch(() => '');
    throw new Error(`${error.message}${state}${error.message.includes('guest console (end)') ? '' : tail()}`, { cause: error });
  } finally {
    vm.stop();
    await running;
  }
  if (vmFailure) throw vmFailure;
} finally {
  deleteTap();
}
process.stderr.write(`${formatTable([result])}\n`);
emitResult(result);
