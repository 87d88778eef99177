#!/usr/bin/env node
// VMM memory: resident memory of the hype process without guest RAM, against a bare node, same run.
//
// hype boots the default guest into its shell (`hype run --timings --mem <M>`, console on a pipe); when
// the boot marker event arrives, /proc/<pid>/smaps_rollup gives the total Rss and /proc/<pid>/smaps the
// guest RAM mapping (the anonymous mapping of exactly --mem bytes that @hype/kvm-sys allocates), whose
// Rss is subtracted. Then the guest is asked to power off through its console. The baseline is
// `node -e "setTimeout(()=>{},1e4)"` (plus one stderr line saying it is up), measured the same way.
//
// Env: HYPE_BENCH_MEM_MIB (guest RAM, default 256, at most 2048: one mapping), HYPE_BENCH_MEM_RUNS
//      (default 3), HYPE_BENCH_BOOT_TIMEOUT_S (default 300), HYPE_KVM_DEVICE.
import { intEnv } from './lib/env.mjs';
import { ensureDefaultGuest, kvmUnavailableReason, requireBuiltCli, startHype, TimedChild } from './lib/hype.mjs';
import { emitResult, emitSkipped, row } from './lib/result.mjs';
import { processRss, readProcessMemory, vmmMemory } from './lib/smaps.mjs';
import { summarize } from './lib/stats.mjs';

const BENCH = 'memory';
const TITLE = 'VMM resident memory without guest RAM (default guest, at its boot marker)';

const unavailable = kvmUnavailableReason();
if (unavailable) {
  emitSkipped(BENCH, TITLE, unavailable);
  process.exit(0);
}

const MEM_MIB = intEnv('HYPE_BENCH_MEM_MIB', 256, 16, 2048);
const RUNS = intEnv('HYPE_BENCH_MEM_RUNS', 3, 1, 100);
const TIMEOUT_MS = intEnv('HYPE_BENCH_BOOT_TIMEOUT_S', 300, 1, 86_400) * 1000;
const MEM_BYTES = MEM_MIB * 1024 * 1024;
/** Printed by the default guest's /init just before it starts the shell (hype_banner in guest/rootfs/usr/lib/hype/functions.sh). */
const SHELL_READY = "Leave with 'poweroff'";

async function hypeSample() {
  const hype = startHype(['--mem', `${MEM_MIB}M`]);
  try {
    await hype.waitFor('boot marker 1', (c) => c.event('boot-marker', 1), TIMEOUT_MS);
    const { rollup, smaps } = readProcessMemory(hype.pid);
    const sample = vmmMemory(rollup, smaps, MEM_BYTES);
    // Power off through the shell once it is there; a guest that does not is stopped with SIGTERM.
    try {
      await hype.waitFor('the guest shell', (c) => c.stdout.includes(SHELL_READY), TIMEOUT_MS);
      hype.write('poweroff\n');
      await hype.waitExit(60_000);
    } catch (error) {
      process.stderr.write(`memory: the guest did not power off cleanly (${error.message.split('\n')[0]}); stopped it\n`);
    }
    return sample;
  } finally {
    await hype.kill();
  }
}

async function bareSample() {
  const bare = new TimedChild(['-e', "process.stderr.write('ready\\n'); setTimeout(() => {}, 1e4)"], { label: 'bare node' });
  try {
    await bare.waitFor('its ready line', (c) => c.stderr.includes('ready\n'), 60_000);
    return processRss(readProcessMemory(bare.pid).rollup);
  } finally {
    await bare.kill();
  }
}

requireBuiltCli();
process.stderr.write('memory: making sure the default guest is built (not timed)\n');
ensureDefaultGuest();

const hype = [];
const bare = [];
for (let i = 0; i < RUNS; i++) {
  hype.push(await hypeSample());
  bare.push(await bareSample());
  const h = hype.at(-1);
  process.stderr.write(`memory: ${i + 1}/${RUNS}: hype Rss ${h.rssKiB} KiB, guest RAM ${h.guestRamRssKiB} KiB, VMM ${h.vmmRssKiB} KiB; bare node ${bare.at(-1)} KiB\n`);
}

const vmm = summarize(hype.map((h) => h.vmmRssKiB / 1024));
const bareMiB = summarize(bare.map((kib) => kib / 1024));
const uncertaintyKiB = Math.max(...hype.map((h) => h.uncertaintyKiB));
const note = uncertaintyKiB > 0
  ? `guest RAM was merged with an adjacent mapping: up to ${uncertaintyKiB} KiB more may belong to the VMM`
  : `median of ${RUNS}; guest RAM ${MEM_MIB} MiB excluded (its Rss: ${summarize(hype.map((h) => h.guestRamRssKiB)).median} KiB)`;

emitResult({
  bench: BENCH,
  title: TITLE,
  status: 'ok',
  rows: [row('VMM Rss without guest RAM', vmm.median, 'MiB', 'lower', { name: 'bare node (setTimeout)', value: bareMiB.median }, note)],
  data: { memMiB: MEM_MIB, runs: RUNS, vmmRssMiB: vmm, bareNodeRssMiB: bareMiB, samples: hype, bareSamplesKiB: bare, node: process.version },
});
