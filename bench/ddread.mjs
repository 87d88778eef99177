#!/usr/bin/env node
// The guest's sequential read of its disk against the host's read of the same file, in one run (issue 6).
//
// Makes a file of random data (HYPE_BENCH_DD_MIB) in a temp dir, boots the default guest with it as
// a read-only /dev/vda and `hype.test=ddread`: the guest runs `dd if=/dev/vda of=/dev/null bs=1M`
// three times, dropping its page cache before each, between boot markers 2 (start) and 3 (end) that
// hype timestamps (`--timings` boot-marker events, host clock). The baseline reads the same file on the
// host in 1 MiB reads (median of 5); both sides are served from the host page cache (the file was
// just written and is read once before), so the ratio is the cost of the virtualised path.
//
// Env: HYPE_BENCH_DD_MIB (default 256), HYPE_BENCH_BOOT_TIMEOUT_S (default 300), HYPE_BENCH_DIR (temp
//      dir), HYPE_KVM_DEVICE.
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { intEnv } from './lib/env.mjs';
import { ensureDefaultGuest, expectCleanExit, kvmUnavailableReason, requireBuiltCli, startHype } from './lib/hype.mjs';
import { markerIntervals, parseDdreadLine } from './lib/ddread.mjs';
import { emitResult, emitSkipped, row } from './lib/result.mjs';
import { summarize } from './lib/stats.mjs';

const BENCH = 'ddread';
const TITLE = "guest dd from /dev/vda vs the host's read of the same file";

const unavailable = kvmUnavailableReason();
if (unavailable) {
  emitSkipped(BENCH, TITLE, unavailable);
  process.exit(0);
}

const MIB = intEnv('HYPE_BENCH_DD_MIB', 256, 16, 4096);
const TIMEOUT_MS = intEnv('HYPE_BENCH_BOOT_TIMEOUT_S', 300, 1, 86_400) * 1000;
const CHUNK = 1 << 20;
/** The host side is cheap: more runs than the guest's three steady its median. */
const HOST_RUNS = 5;

function makeRandomFile(path) {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4 * CHUNK);
  try {
    for (let written = 0; written < MIB * CHUNK; written += chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(chunk.length, MIB * CHUNK - written));
  } finally {
    closeSync(fd);
  }
}

// One buffer, written once so that its pages are mapped: page faults on a fresh buffer cost more than
// the reads themselves on some hosts (PVM guests), and the guest's dd reuses its buffer too.
const buf = Buffer.alloc(CHUNK).fill(0x5a);

/** One sequential read of the whole file in 1 MiB reads: MB/s. */
function hostRead(path) {
  const fd = openSync(path, 'r');
  let total = 0;
  const t0 = performance.now();
  try {
    for (let n; (n = readSync(fd, buf, 0, CHUNK, null)) > 0; ) total += n;
  } finally {
    closeSync(fd);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (total !== MIB * CHUNK) throw new Error(`host read of ${path}: ${total} bytes, expected ${MIB * CHUNK}`);
  return total / seconds / 1e6;
}

requireBuiltCli();
process.stderr.write('ddread: making sure the default guest is built (not timed)\n');
ensureDefaultGuest();

const dir = mkdtempSync(join(process.env.HYPE_BENCH_DIR ?? tmpdir(), 'hype-bench-dd-'));
try {
  const disk = join(dir, 'random.img');
  if (disk.includes(',')) throw new Error(`HYPE_BENCH_DIR: ${dir} contains a comma, which a --disk path cannot hold; use another directory`);
  makeRandomFile(disk);
  hostRead(disk); // warm: the page cache holds it for both sides

  const hype = startHype(['--disk', `${disk},ro`, '--cmdline', 'hype.test=ddread']);
  const exit = await hype.waitExit(TIMEOUT_MS);
  expectCleanExit(hype, exit);
  const guest = parseDdreadLine(hype.stdout);
  if (!guest) throw new Error(`the guest printed no passing ddread line${hype.tail()}`);
  if (guest.bytes !== MIB * CHUNK) throw new Error(`the guest read ${guest.bytes} bytes from /dev/vda, expected ${MIB * CHUNK}`);
  const intervals = markerIntervals(hype.events);
  if (intervals.length !== guest.runs) {
    throw new Error(`expected ${guest.runs} marker 2/3 pairs from hype --timings, got ${intervals.length}${hype.tail()}`);
  }
  const guestMBps = summarize(intervals.map((ms) => guest.bytes / (ms / 1000) / 1e6));
  const guestClockMBps = guest.uptimeCs.every((cs) => cs > 0) ? summarize(guest.uptimeCs.map((cs) => guest.bytes / (cs / 100) / 1e6)) : undefined;

  const host = [];
  for (let i = 0; i < Math.max(HOST_RUNS, guest.runs); i++) host.push(hostRead(disk));
  const hostMBps = summarize(host);
  const baseline = { name: 'host read, 1 MiB reads', value: hostMBps.median };

  const rows = [row(`guest dd /dev/vda bs=1M, ${MIB} MiB (host clock)`, guestMBps.median, 'MB/s', 'higher', baseline, `median of ${guest.runs} runs in one boot`)];
  if (guestClockMBps) rows.push(row(`guest dd /dev/vda bs=1M (guest /proc/uptime, 10 ms)`, guestClockMBps.median, 'MB/s', 'higher', baseline));
  emitResult({
    bench: BENCH,
    title: TITLE,
    status: 'ok',
    rows,
    data: { fileMiB: MIB, runs: guest.runs, guestMBps, guestClockMBps, hostMBps, markerIntervalsMs: intervals, guestUptimeCs: guest.uptimeCs, node: process.version },
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
