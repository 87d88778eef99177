#!/usr/bin/env node
// `pnpm bench`: runs every benchmark as a child process, gathers their results into one report
// (bench/results/latest.json) and prints a table with the ratios. Never fails on a time: the exit status
// is 1 only when a benchmark crashed (non-zero exit, no valid result line, or a time-out).
//
// Usage: node bench/run.mjs [name ...]     (default: all, in the order below)
// Env: HYPE_BENCH_TIMEOUT_S (per benchmark, default 3600), HYPE_BENCH_REPORT (the JSON report's path,
//      default bench/results/latest.json); each benchmark's own HYPE_BENCH_* variables pass through
//      (bench/README.md).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { intEnv } from './lib/env.mjs';
import { kvmUnavailableReason } from './lib/hype.mjs';
import { parseResultLines, RESULT_PREFIX } from './lib/result.mjs';
import { formatTable } from './lib/table.mjs';
// Every benchmark, in report order: bench/<name>.mjs (one list, shared with pnpm bench's plan).
import { ALL_BENCHMARKS as BENCHMARKS } from '../scripts/bench-plan.mjs';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(BENCH_DIR, '..');

const requested = process.argv.slice(2);
for (const name of requested) {
  if (!BENCHMARKS.includes(name)) {
    process.stderr.write(`bench/run.mjs: unknown benchmark "${name}"; known: ${BENCHMARKS.join(', ')}\n`);
    process.exit(2);
  }
}
const selected = requested.length > 0 ? BENCHMARKS.filter((b) => requested.includes(b)) : BENCHMARKS;
const TIMEOUT_MS = intEnv('HYPE_BENCH_TIMEOUT_S', 3600, 1, 7 * 86_400) * 1000;

let current;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    // Benchmarks run in their own process group (so a time-out can end their children too).
    if (current) killGroup(current, 'SIGTERM');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Relays a child's output line by line with a `[name] ` prefix; result lines are kept, not relayed. */
function relay(stream, name, sink) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      sink(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  stream.on('end', () => buf && sink(buf));
}

function runBenchmark(name) {
  const file = join(BENCH_DIR, `${name}.mjs`);
  if (!existsSync(file)) return Promise.resolve({ bench: name, status: 'skipped', reason: `bench/${name}.mjs is not in this checkout` });
  process.stderr.write(`\n== ${name} (bench/${name}.mjs)\n`);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    current = child;
    let stdout = '';
    let stderrTail = '';
    relay(child.stdout, name, (line) => {
      stdout += `${line}\n`;
      if (!line.startsWith(RESULT_PREFIX)) process.stderr.write(`[${name}] ${line}\n`);
    });
    relay(child.stderr, name, (line) => {
      stderrTail = `${stderrTail}${line}\n`.slice(-4000);
      process.stderr.write(`[${name}] ${line}\n`);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 10_000).unref();
    }, TIMEOUT_MS);
    const finish = (code, signal, spawnError) => {
      clearTimeout(timer);
      current = undefined;
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const { results, problems } = parseResultLines(stdout);
      const crash = (reason) => ({ bench: name, status: 'crashed', reason, exitCode: code, signal, seconds, stderrTail });
      if (spawnError) return resolve(crash(`could not start: ${spawnError.message}`));
      if (timedOut) return resolve(crash(`timed out after ${TIMEOUT_MS / 1000} s (HYPE_BENCH_TIMEOUT_S)`));
      if (code !== 0) return resolve(crash(`${signal ? `killed by ${signal}` : `exit status ${code}`}: ${lastLine(stderrTail)}`));
      if (problems.length > 0) return resolve(crash(`bad result: ${problems.join('; ')}`));
      if (results.length === 0) return resolve(crash(`printed no ${RESULT_PREFIX.trim()} line (see bench/README.md)`));
      const result = results[0];
      if (result.bench !== name) return resolve(crash(`result names bench "${result.bench}", expected "${name}"`));
      resolve({ ...result, exitCode: code, seconds });
    };
    child.on('error', (error) => finish(null, null, error));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

function lastLine(text) {
  const lines = text.trim().split('\n');
  return lines.at(-1) || '(no output on stderr)';
}

function gitCommit() {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const startedAt = new Date().toISOString();
const benchmarks = [];
for (const name of selected) benchmarks.push(await runBenchmark(name));

const report = {
  schema: 1,
  startedAt,
  finishedAt: new Date().toISOString(),
  host: {
    node: process.version,
    kernel: release(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    kvm: kvmUnavailableReason() ?? 'available',
    commit: gitCommit(),
  },
  benchmarks,
};
const reportPath = resolve(process.env.HYPE_BENCH_REPORT || join(BENCH_DIR, 'results', 'latest.json'));
mkdirSync(dirname(reportPath), { recursive: true });
writeFileSync(reportPath, `${JSON.stringify(report, null, 2)}\n`);

const crashed = benchmarks.filter((b) => b.status === 'crashed');
process.stdout.write(
  `\nhype benchmarks, ${startedAt}, node ${process.version}, ${report.host.cpus} CPU(s), /dev/kvm: ${report.host.kvm}\n\n` +
    `${formatTable(benchmarks)}\n\nreport: ${reportPath}\n`,
);
if (crashed.length > 0) {
  process.stderr.write(`\n${crashed.length} benchmark(s) crashed: ${crashed.map((b) => b.bench).join(', ')}\n`);
  process.exit(1);
}
