#!/usr/bin/env node
// Boot to /init and VMM start-up cost, for the default guest, against bare node started the same way.
//
// Each boot runs the built CLI as a child: `hype run --timings --cmdline hype.test=boot`; the guest's
// /init writes boot marker 1 to port 0xf5 as it starts, the boot check runs and the guest powers off.
// Measured per boot, from hype's `--timings` events (bench/README.md):
//   - wall: the parent's time from spawn() to reading the event line on the child's stderr;
//   - hype clock: the event's own `ms`, performance.now() in hype = ms since its process started.
// Baselines, in the same run and interleaved with the boots: `node -e 0` (wall, spawn to exit) and a
// bare node's time to its first line of user code on its own clock. Medians of HYPE_BENCH_BOOTS. Every
// timed run starts after bench/lib/launder.mjs (memory the previous guest freed written once, untimed).
//
// Env: HYPE_BENCH_BOOTS (default 5), HYPE_BENCH_BOOT_TIMEOUT_S (per boot, default 300),
//      HYPE_KVM_DEVICE (default /dev/kvm), HYPE_BENCH_LAUNDER_MIB (bench/lib/launder.mjs).
import { intEnv } from './lib/env.mjs';
import { launderFreedMemory, launderMib } from './lib/launder.mjs';
import {
  bareNodeUserCodeMs,
  bareNodeWallMs,
  ensureDefaultGuest,
  expectCleanExit,
  kvmUnavailableReason,
  requireBuiltCli,
  startHype,
} from './lib/hype.mjs';
import { emitResult, emitSkipped, row } from './lib/result.mjs';
import { summarize } from './lib/stats.mjs';

const BENCH = 'boot';
const TITLE = 'boot to /init and VMM start-up (default guest)';

const unavailable = kvmUnavailableReason();
if (unavailable) {
  emitSkipped(BENCH, TITLE, unavailable);
  process.exit(0);
}

const BOOTS = intEnv('HYPE_BENCH_BOOTS', 5, 1, 1000);
const TIMEOUT_MS = intEnv('HYPE_BENCH_BOOT_TIMEOUT_S', 300, 1, 86_400) * 1000;
const ARGS = ['--cmdline', 'hype.test=boot'];
const LAUNDER_MIB = launderMib();

/** One boot; the events it must produce, checked. */
async function boot() {
  const hype = startHype(ARGS);
  const exit = await hype.waitExit(TIMEOUT_MS);
  expectCleanExit(hype, exit);
  const marker = hype.event('boot-marker', 1);
  const firstRun = hype.event('first-kvm-run');
  const created = hype.event('vm-created');
  const ended = hype.event('exit');
  const missing = [
    ['vm-created', created],
    ['first-kvm-run', firstRun],
    ['boot-marker value 1', marker],
    ['exit', ended],
  ].filter(([, e]) => !e);
  if (missing.length > 0) {
    throw new Error(`hype --timings printed no ${missing.map(([n]) => n).join(', ')} event (contract: bench/README.md)${hype.tail()}`);
  }
  if (!/^HYPE-TEST boot PASS/m.test(hype.stdout)) throw new Error(`the guest's boot check did not pass${hype.tail()}`);
  return {
    vmCreatedMs: created.ms,
    firstKvmRunMs: firstRun.ms,
    firstKvmRunWallMs: firstRun.wallMs,
    bootMarkerMs: marker.ms,
    bootMarkerWallMs: marker.wallMs,
    exitEventMs: ended.ms,
    processWallMs: exit.wallMs,
  };
}

requireBuiltCli();
process.stderr.write('boot: making sure the default guest is built (not timed)\n');
ensureDefaultGuest();

// Warm-up, not counted: page cache for node, hype's modules, the kernel and the initrd.
await boot();
await bareNodeWallMs();

const boots = [];
const nodeWall = [];
const nodeUserCode = [];
for (let i = 0; i < BOOTS; i++) {
  // Alternate the order so that load from other processes falls on both sides alike.
  const steps = [
    async () => {
      launderFreedMemory(LAUNDER_MIB);
      boots.push(await boot());
    },
    async () => {
      launderFreedMemory(LAUNDER_MIB);
      nodeWall.push(await bareNodeWallMs());
      launderFreedMemory(LAUNDER_MIB);
      nodeUserCode.push(await bareNodeUserCodeMs());
    },
  ];
  if (i % 2 === 1) steps.reverse();
  for (const step of steps) await step();
  process.stderr.write(`boot: ${i + 1}/${BOOTS}: boot marker at ${boots.at(-1).bootMarkerMs.toFixed(1)} ms (hype clock)\n`);
}

const pick = (key) => summarize(boots.map((b) => b[key]));
const stats = {
  vmCreatedMs: pick('vmCreatedMs'),
  firstKvmRunMs: pick('firstKvmRunMs'),
  firstKvmRunWallMs: pick('firstKvmRunWallMs'),
  bootMarkerMs: pick('bootMarkerMs'),
  bootMarkerWallMs: pick('bootMarkerWallMs'),
  exitEventMs: pick('exitEventMs'),
  processWallMs: pick('processWallMs'),
  nodeDashE0WallMs: summarize(nodeWall),
  nodeUserCodeMs: summarize(nodeUserCode),
};
const nodeE0 = { name: 'node -e 0 (spawn to exit)', value: stats.nodeDashE0WallMs.median };
const nodeStart = { name: 'node: process start to user code', value: stats.nodeUserCodeMs.median };

emitResult({
  bench: BENCH,
  title: TITLE,
  status: 'ok',
  rows: [
    row('boot to /init: spawn to marker (wall)', stats.bootMarkerWallMs.median, 'ms', 'lower', nodeE0, `median of ${BOOTS}`),
    row('boot to /init: process start to marker (hype clock)', stats.bootMarkerMs.median, 'ms', 'lower', nodeStart),
    row('VMM start-up: spawn to first KVM_RUN (wall)', stats.firstKvmRunWallMs.median, 'ms', 'lower', nodeE0),
    row('VMM start-up: process start to first KVM_RUN (hype clock)', stats.firstKvmRunMs.median, 'ms', 'lower', nodeStart),
  ],
  data: { boots: BOOTS, hypeArgs: ['run', '--timings', ...ARGS], node: process.version, ...stats },
});
