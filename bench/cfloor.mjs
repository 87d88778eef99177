#!/usr/bin/env node
// hype against a minimal C VMM (bench/cfloor/cfloor.c, issue 15): the same kernel, initrd and command
// line booted by both, on the serial console and on hvc0, so every ratio is hype's cost over a floor that
// does the same work with nothing in between (one vCPU on the main thread, every exit completed in C).
//
// Both sides run the default guest in test mode `boot` (its /init writes boot marker 1 to port 0xf5,
// runs the boot check and powers off through port 0xf4), for each console kind K (serial, hvc):
//   hype    the built CLI: `hype run --timings --console K --rng off --mem 256 --cmdline hype.test=boot`
//           (no virtio-rng: the C VMM has no such device, so both guests see the same machine)
//   cfloor  `cfloor --console K --kernel VMLINUX --initrd INITRD --cmdline <hype's exact command line>
//           --mem 256`, compiled with gcc from bench/cfloor/cfloor.c first (not timed; cached by source hash)
// The kernel and initrd are the default guest's (`hype guest build` prints their paths); hype's command
// line comes from its own debug log (HYPE_LOG=debug) in the warm-up boot, so the C VMM boots with exactly
// what hype passed (console, reboot, 8250, virtio-mmio device and any host-quirk additions).
//
// Measured per boot, by the same code for both (one clock: this process's performance.now() from
// spawn(); and each side's own `ms` since its process started, from its timing lines on stderr):
//   - start to the first kernel output byte: spawn() to the first chunk on the child's stdout (wall);
//   - first KVM_RUN to /init: marker 1 minus first-kvm-run, each on its own clock;
//   - whole run: spawn() to the child's exit after the guest's power-off (wall);
//   - VMM start-up: process start to first KVM_RUN, each on its own clock.
// One warm-up boot of each side per console (page cache; hype's command line; the console lines of the
// two guests compared, numbers masked), then HYPE_BENCH_CFLOOR_RUNS boots of each, interleaved with the
// order alternating, each after bench/lib/launder.mjs (memory the previous guest freed written once, untimed);
// medians.
//
// Env: HYPE_BENCH_CFLOOR_RUNS (default 3), HYPE_BENCH_CFLOOR_CONSOLES (default serial,hvc),
//      HYPE_BENCH_BOOT_TIMEOUT_S (per boot, default 300), HYPE_BENCH_DIR (where the compiled cfloor goes,
//      default the OS temp dir), HYPE_KVM_DEVICE (default /dev/kvm; hype and cfloor
//      both use it), HYPE_BENCH_LAUNDER_MIB (bench/lib/launder.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { intEnv } from './lib/env.mjs';
import { launderFreedMemory, launderMib } from './lib/launder.mjs';
import { ensureDefaultGuest, HYPE_BIN, kvmIsPvm, kvmUnavailableReason, requireBuiltCli, ROOT } from './lib/hype.mjs';
import { emitResult, emitSkipped, row } from './lib/result.mjs';
import { summarize } from './lib/stats.mjs';

const BENCH = 'cfloor';
const TITLE = 'hype against a minimal C VMM (bench/cfloor/cfloor.c): same kernel, initrd and command line, serial console and hvc0';

const unavailable = kvmUnavailableReason() ?? pvmHostReason();
if (unavailable) {
  emitSkipped(BENCH, TITLE, unavailable);
  process.exit(0);
}

/** The C floor has no host-quirk layer (cfloor.c's header): on a kvm_pvm host, whose CPL0 instruction
 * emulator lacks int3, clac and more, its guest stops at the first of them. */
function pvmHostReason() {
  if (!kvmIsPvm()) return undefined;
  return "needs ordinary KVM: this host's /dev/kvm is kvm_pvm's, whose instruction emulator the C floor has no workarounds for; pnpm bench runs it in the nested rig (scripts/kvm-in-qemu.sh) on such a host";
}

const RUNS = intEnv('HYPE_BENCH_CFLOOR_RUNS', 3, 1, 1000);
const TIMEOUT_MS = intEnv('HYPE_BENCH_BOOT_TIMEOUT_S', 300, 1, 86_400) * 1000;
const MEM_MIB = 256;
/** After `--console <kind>`. */
const HYPE_ARGS = ['--rng', 'off', '--mem', String(MEM_MIB), '--cmdline', 'hype.test=boot'];
const CONSOLES = (process.env.HYPE_BENCH_CFLOOR_CONSOLES || 'serial,hvc').split(',').map((c) => c.trim());
for (const kind of CONSOLES) {
  if (kind !== 'serial' && kind !== 'hvc') throw new RangeError(`HYPE_BENCH_CFLOOR_CONSOLES=${process.env.HYPE_BENCH_CFLOOR_CONSOLES}: a comma-separated list of serial, hvc`);
}
const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror'];
const SOURCE = join(ROOT, 'bench/cfloor/cfloor.c');
const MAX_CAPTURE = 4 << 20;

/** Compiles cfloor.c once per (source, flags, compiler) into HYPE_BENCH_DIR or the temp dir; returns the binary. */
function buildCfloor() {
  const version = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (version.error) throw new Error(`gcc: ${version.error.message} (the cfloor bench compiles bench/cfloor/cfloor.c; scripts/setup.sh installs gcc)`);
  const hash = createHash('sha256').update(readFileSync(SOURCE)).update(CFLAGS.join(' ')).update(version.stdout).digest('hex').slice(0, 16);
  const dir = join(process.env.HYPE_BENCH_DIR || tmpdir(), `hype-cfloor-${hash}`);
  const bin = join(dir, 'cfloor');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  const r = spawnSync('gcc', [...CFLAGS, '-o', tmp, SOURCE], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw new Error(`gcc: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`gcc ${CFLAGS.join(' ')} bench/cfloor/cfloor.c failed with exit status ${r.status} (its messages are above)`);
  renameSync(tmp, bin);
  return bin;
}

/** The `{"event":...,"ms":...}` of a `<prefix>{json}` line, or undefined. */
function parseEvent(line, prefix) {
  if (!line.startsWith(prefix)) return undefined;
  try {
    const event = JSON.parse(line.slice(prefix.length));
    return event && typeof event.event === 'string' && Number.isFinite(event.ms) ? event : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `command args` to its end, timing (this process's clock, from spawn()) the first stdout chunk, each
 * `<prefix>` event line on stderr and the exit. The same code for hype and cfloor.
 */
function timedRun(label, command, args, prefix, env = process.env) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const run = { label, events: [], stdout: '', stderr: '', firstOutputWallMs: undefined };
    const tail = () => `\nstderr:\n${run.stderr.slice(-2000)}\nstdout (guest console):\n${run.stdout.slice(-2000)}`;
    child.stdin.on('error', () => {});
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      run.firstOutputWallMs ??= performance.now() - t0;
      if (run.stdout.length < MAX_CAPTURE) run.stdout += chunk;
    });
    let errBuf = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      const now = performance.now() - t0;
      if (run.stderr.length < MAX_CAPTURE) run.stderr += chunk;
      errBuf += chunk;
      let nl;
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        const event = parseEvent(errBuf.slice(0, nl).replace(/\r$/, ''), prefix);
        errBuf = errBuf.slice(nl + 1);
        if (event) run.events.push({ ...event, wallMs: now });
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not exit within ${TIMEOUT_MS / 1000} s (HYPE_BENCH_BOOT_TIMEOUT_S)${tail()}`));
    }, TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${label}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const exitWallMs = performance.now() - t0;
      child.stdin.destroy();
      if (code !== 0) return reject(new Error(`${label} ended with ${signal ? `signal ${signal}` : `exit status ${code}`}, expected 0${tail()}`));
      const event = (name, value) => run.events.find((e) => e.event === name && (value === undefined || e.value === value));
      const firstRun = event('first-kvm-run');
      const marker = event('boot-marker', 1);
      const ended = event('exit');
      const missing = [['first-kvm-run', firstRun], ['boot-marker value 1', marker], ['exit', ended]].filter(([, e]) => !e).map(([n]) => n);
      if (missing.length > 0) return reject(new Error(`${label} printed no ${missing.join(', ')} event${tail()}`));
      if (run.firstOutputWallMs === undefined) return reject(new Error(`${label}: the guest printed nothing${tail()}`));
      if (!/^HYPE-TEST boot PASS/m.test(run.stdout)) return reject(new Error(`${label}: the guest's boot check did not pass${tail()}`));
      resolve({
        firstOutputWallMs: run.firstOutputWallMs,
        firstKvmRunMs: firstRun.ms,
        firstKvmRunWallMs: firstRun.wallMs,
        bootMarkerMs: marker.ms,
        bootMarkerWallMs: marker.wallMs,
        runToInitMs: marker.ms - firstRun.ms,
        exitEventMs: ended.ms,
        processWallMs: exitWallMs,
        // hype's start-up split (its own events; cfloor has none of them)
        startup: {
          cliStartMs: event('cli-start')?.ms,
          vmCreateMs: event('vm-create')?.ms,
          vmRamMs: event('vm-ram')?.ms,
          vmDevicesMs: event('vm-devices')?.ms,
          vmLoadedMs: event('vm-loaded')?.ms,
          vmCreatedMs: event('vm-created')?.ms,
          firstKvmRunMs: firstRun.ms,
        },
        ...(marker.exits ? { exitsToInit: marker.exits, exitsToEnd: ended.exits } : {}),
        stdout: run.stdout,
        stderr: run.stderr,
      });
    });
  });
}

/** The guest's console lines with every number masked (timestamps, uptimes, clock rates), to compare the two boots. */
const consoleLines = (text) => text.split('\n').map((l) => l.replace(/\r$/, '').replace(/\d+/g, '#'));

requireBuiltCli();
process.stderr.write('cfloor: making sure the default guest is built (not timed)\n');
const guestFiles = ensureDefaultGuest();
const kernel = /^kernel: (.+)$/m.exec(guestFiles)?.[1];
const initrd = /^initrd: (.+)$/m.exec(guestFiles)?.[1];
if (!kernel || !initrd) throw new Error(`hype guest build printed no kernel:/initrd: lines:\n${guestFiles}`);
process.stderr.write(`cfloor: compiling bench/cfloor/cfloor.c (not timed)\n`);
const cfloorBin = buildCfloor();

/** One console kind: warm-up boots of both (not counted; they give hype's exact command line), then the boot functions. */
async function prepare(kind) {
  const hypeArgs = ['run', '--timings', '--console', kind, ...HYPE_ARGS];
  const hypeBoot = (env) => timedRun(`hype (${kind})`, process.execPath, [HYPE_BIN, ...hypeArgs], 'hype-timing ', env);
  const warm = await hypeBoot({ ...process.env, HYPE_LOG: 'debug' });
  const cmdline = /^hype: debug: .*; cmdline: (.*)$/m.exec(warm.stderr)?.[1];
  if (cmdline === undefined) throw new Error(`HYPE_LOG=debug hype printed no "cmdline:" line:\n${warm.stderr.slice(-2000)}`);
  const cfloorArgs = ['--console', kind, '--kernel', kernel, '--initrd', initrd, '--cmdline', cmdline, '--mem', String(MEM_MIB)];
  const cfloorBoot = () => timedRun(`cfloor (${kind})`, cfloorBin, cfloorArgs, 'cfloor-timing ');
  const warmC = await cfloorBoot();
  process.stderr.write(`cfloor: ${kind}: command line: ${cmdline}\n`);
  const e = warmC.exitsToInit;
  if (e) process.stderr.write(`cfloor: ${kind}: the C VMM's exits to /init: ${e.all} (port I/O ${e.pio}, of which UART ${e.uart}; MMIO ${e.mmio}, of which virtio notify ${e.virtioNotify})\n`);
  const h = warm.exitsToInit;
  if (h) {
    process.stderr.write(
      `cfloor: ${kind}: hype's exits to /init: ${h.all} (port I/O ${h.pio}, of which ${h.mirrored} reads answered on the vCPU thread ` +
        `from the read mirror and ${h.uart} UART exits to JS; MMIO ${h.mmio}); ${h.coalesced ?? 0} port writes posted through the coalesced ring (no exit)\n`,
    );
  }
  // The same guest, the same messages (numbers aside): say where they differ.
  const hypeLines = new Set(consoleLines(warm.stdout));
  const onlyC = consoleLines(warmC.stdout).filter((l) => !hypeLines.has(l));
  const cLines = new Set(consoleLines(warmC.stdout));
  const onlyHype = consoleLines(warm.stdout).filter((l) => !cLines.has(l));
  for (const [who, lines] of [['the C VMM', onlyC], ['hype', onlyHype]]) {
    if (lines.length > 0) process.stderr.write(`cfloor: ${kind}: console lines only ${who}'s guest printed:\n  ${lines.join('\n  ')}\n`);
  }
  return { kind, hypeArgs, cfloorArgs, cmdline, onlyC, onlyHype, hypeBoot: () => hypeBoot(), cfloorBoot, hype: [], c: [] };
}

const LAUNDER_MIB = launderMib();
const sides = [];
for (const kind of CONSOLES) sides.push(await prepare(kind));

for (let i = 0; i < RUNS; i++) {
  for (const side of sides) {
    // Alternate the order so that load from other processes falls on both sides alike.
    const steps = [
      async () => {
        launderFreedMemory(LAUNDER_MIB);
        side.hype.push(await side.hypeBoot());
      },
      async () => {
        launderFreedMemory(LAUNDER_MIB);
        side.c.push(await side.cfloorBoot());
      },
    ];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) await step();
    const h = side.hype.at(-1);
    const f = side.c.at(-1);
    process.stderr.write(
      `cfloor: ${side.kind} ${i + 1}/${RUNS}: whole run hype ${h.processWallMs.toFixed(0)} ms, C ${f.processWallMs.toFixed(0)} ms; ` +
        `first KVM_RUN to /init hype ${h.runToInitMs.toFixed(0)} ms, C ${f.runToInitMs.toFixed(0)} ms; ` +
        `kernel and initrd into guest RAM hype ${loadMs(h.startup.vmLoadedMs, h.startup.vmDevicesMs)}, C ${loadMs(f.startup.vmLoadedMs, f.startup.vmRamMs)}\n`,
    );
  }
}

const KEYS = ['firstOutputWallMs', 'firstKvmRunMs', 'firstKvmRunWallMs', 'bootMarkerMs', 'bootMarkerWallMs', 'runToInitMs', 'exitEventMs', 'processWallMs'];
const stats = (runs) => Object.fromEntries(KEYS.map((k) => [k, summarize(runs.map((r) => r[k]))]));
const note = `median of ${RUNS}`;
const rows = [];
const data = { runs: RUNS, memMiB: MEM_MIB, consoles: CONSOLES };
for (const side of sides) {
  const hs = stats(side.hype);
  const cs = stats(side.c);
  const name = side.kind === 'hvc' ? 'hvc0' : 'serial';
  const vs = (key) => ({ name: 'cfloor (C VMM)', value: cs[key].median });
  const metric = (key, what) => row(`${name}: ${what}`, hs[key].median, 'ms', 'lower', vs(key), note);
  rows.push(
    metric('firstOutputWallMs', 'start to first kernel output: spawn to first console byte (wall)'),
    metric('runToInitMs', 'first KVM_RUN to /init (marker 1), own clocks'),
    metric('processWallMs', "whole run: spawn to exit after the guest's poweroff (wall)"),
    metric('firstKvmRunMs', 'VMM start-up: process start to first KVM_RUN, own clocks'),
  );
  data[name] = {
    hypeArgs: side.hypeArgs,
    cfloorArgs: side.cfloorArgs,
    cmdline: side.cmdline,
    consoleLinesOnlyInC: side.onlyC,
    consoleLinesOnlyInHype: side.onlyHype,
    hype: hs,
    cfloor: cs,
    cfloorExits: side.c.map((r) => ({ toInit: r.exitsToInit, toEnd: r.exitsToEnd })),
    hypeExits: side.hype.map((r) => ({ toInit: r.exitsToInit, toEnd: r.exitsToEnd })),
    hypeStartup: startupSplit(side.hype),
  };
  const s = data[name].hypeStartup;
  // cfloor's own load step (its vm-ram and vm-loaded events), to set beside hype's
  const cSteps = side.c.map((r) => r.startup);
  const cLoad = cSteps.every((c) => c.vmRamMs !== undefined && c.vmLoadedMs !== undefined)
    ? Math.round(summarize(cSteps.map((c) => c.vmLoadedMs - c.vmRamMs)).median)
    : undefined;
  data[name].cfloorLoadMs = cLoad;
  if (s) {
    process.stderr.write(
      `cfloor: ${name}: hype's start-up, medians: Node and the bundle to cli-start ${s.toCliStart} ms, the checks to vm-create ` +
        `${s.checks} ms, createVm ${s.createVm} ms${s.createVmSteps ? ` (${s.createVmSteps})` : ''}, then to the first KVM_RUN ${s.toFirstRun} ms ` +
        `(C: ${cs.firstKvmRunMs.median.toFixed(0)} ms in all${cLoad !== undefined ? `, of which kernel and initrd ${cLoad} ms` : ''})\n`,
    );
  }
}

/** `to - from` as "N ms", or "?" when a build printed no such events. */
function loadMs(to, from) {
  return to === undefined || from === undefined ? '?' : `${Math.round(to - from)} ms`;
}

/** Medians of the steps of hype's start-up (ms), from its cli-start, vm-create and vm-created events; undefined without them. */
function startupSplit(runs) {
  const steps = runs.map(({ startup: s }) => s);
  if (steps.some((s) => s.cliStartMs === undefined || s.vmCreateMs === undefined || s.vmCreatedMs === undefined)) return undefined;
  const median = (f) => Math.round(summarize(steps.map(f)).median);
  return {
    toCliStart: median((s) => s.cliStartMs),
    checks: median((s) => s.vmCreateMs - s.cliStartMs),
    createVm: median((s) => s.vmCreatedMs - s.vmCreateMs),
    toFirstRun: median((s) => s.firstKvmRunMs - s.vmCreatedMs),
    // createVm's own steps (@hype/vm's vm-ram, vm-devices, vm-loaded events), when the build has them
    ...(steps.every((s) => s.vmRamMs !== undefined && s.vmDevicesMs !== undefined && s.vmLoadedMs !== undefined)
      ? {
          createVmSteps:
            `KVM and guest RAM ${median((s) => s.vmRamMs - s.vmCreateMs)} ms, devices ${median((s) => s.vmDevicesMs - s.vmRamMs)} ms, ` +
            `kernel and initrd ${median((s) => s.vmLoadedMs - s.vmDevicesMs)} ms, vCPUs ${median((s) => s.vmCreatedMs - s.vmLoadedMs)} ms`,
        }
      : {}),
  };
}

emitResult({ bench: BENCH, title: TITLE, status: 'ok', rows, data });
