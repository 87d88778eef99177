// The benchmark scripts end to end against bench/test/fixtures/fake-hype.mjs, a stand-in CLI that
// follows the `--timings` contract without KVM (with a real @hype/kvm-sys mapping as guest RAM), so the
// plumbing (events, medians, smaps, guest output, power-off, the runner's report) is checked on any host.
// On hosts with /dev/kvm, `pnpm bench` runs the same scripts against the real CLI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseResultLines } from '../lib/result.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fakeHype = fileURLToPath(new URL('./fixtures/fake-hype.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'hype-bench-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fakeEnv = { HYPE_BENCH_HYPE_BIN: fakeHype, HYPE_KVM_DEVICE: '/dev/null', HYPE_BENCH_DIR: tmp };

function runScript(script: string, env: Record<string, string>, args: string[] = []) {
  const r = spawnSync(process.execPath, [join(root, 'bench', script), ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function resultOf(script: string, env: Record<string, string>) {
  const r = runScript(script, env);
  expect(r.status, r.stderr).toBe(0);
  const { results, problems } = parseResultLines(r.stdout);
  expect(problems).toEqual([]);
  expect(results).toHaveLength(1);
  return results[0];
}

describe.each(['boot.mjs', 'memory.mjs', 'ddread.mjs', 'net.mjs'])('%s without KVM', (script) => {
  it('reports itself skipped, naming the missing device, and exits 0', () => {
    const result = resultOf(script, { HYPE_KVM_DEVICE: join(tmp, 'no-kvm-here') });
    expect(result).toMatchObject({ bench: script.replace('.mjs', ''), status: 'skipped', reason: `needs ${join(tmp, 'no-kvm-here')} (absent on this host)` });
  });
});

describe('cfloor.mjs', () => {
  it('skips itself where the host-quirk layer would be on (a kvm_pvm host), naming where to run it instead', () => {
    const result = resultOf('cfloor.mjs', { ...fakeEnv, HYPE_HOST_QUIRKS: 'pvm' });
    expect(result).toMatchObject({ bench: 'cfloor', status: 'skipped' });
    expect(result.reason).toMatch(/^needs ordinary KVM: .*kvm_pvm.*scripts\/kvm-in-qemu\.sh/);
  });
});

describe('boot.mjs', () => {
  it('takes medians of the timing events of each boot next to bare node', { timeout: 180_000 }, () => {
    const result = resultOf('boot.mjs', { ...fakeEnv, HYPE_BENCH_BOOTS: '3' });
    expect(result.status).toBe('ok');
    expect(result.rows.map((r: { metric: string }) => r.metric)).toEqual([
      'boot to /init: spawn to marker (wall)',
      'boot to /init: process start to marker (hype clock)',
      'VMM start-up: spawn to first KVM_RUN (wall)',
      'VMM start-up: process start to first KVM_RUN (hype clock)',
    ]);
    const d = result.data;
    expect(d.boots).toBe(3);
    expect(d.hypeArgs).toEqual(['run', '--timings', '--cmdline', 'hype.test=boot']);
    for (const key of ['bootMarkerMs', 'bootMarkerWallMs', 'firstKvmRunMs', 'nodeDashE0WallMs', 'nodeUserCodeMs']) expect(d[key].n).toBe(3);
    // The fake's events come in order; the wall time includes the spawn, so it is later than hype's clock.
    expect(d.vmCreatedMs.median).toBeLessThanOrEqual(d.firstKvmRunMs.median);
    expect(d.firstKvmRunMs.median).toBeLessThanOrEqual(d.bootMarkerMs.median);
    expect(d.bootMarkerMs.median).toBeLessThanOrEqual(d.exitEventMs.median);
    expect(d.bootMarkerWallMs.median).toBeGreaterThan(d.bootMarkerMs.median);
    const [wall, clock] = result.rows;
    expect(wall.value).toBe(d.bootMarkerWallMs.median);
    expect(wall.baseline.value).toBe(d.nodeDashE0WallMs.median);
    expect(wall.ratio).toBeCloseTo(wall.value / wall.baseline.value, 10);
    expect(clock.baseline.value).toBe(d.nodeUserCodeMs.median);
  });

  it('crashes (exit 1) with hype\'s output when a boot fails', { timeout: 120_000 }, () => {
    const r = runScript('boot.mjs', { ...fakeEnv, FAKE_HYPE_EXIT: '5', HYPE_BENCH_BOOTS: '1' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/hype ended with exit status 5, expected exit status 0/);
    expect(r.stderr).toContain('hype-timing {"event":"boot-marker"');
  });
});

describe('memory.mjs', () => {
  it('subtracts the guest RAM mapping found by --mem size, next to a bare node', { timeout: 180_000 }, () => {
    const result = resultOf('memory.mjs', { ...fakeEnv, HYPE_BENCH_MEM_RUNS: '1', HYPE_BENCH_MEM_MIB: '96', FAKE_HYPE_TOUCH_MIB: '6' });
    const [sample] = result.data.samples;
    expect(sample.guestRamMapping.sizeBytes).toBe(96 * 1024 * 1024);
    // The fake touched 6 MiB of its guest RAM.
    expect(sample.guestRamRssKiB).toBeGreaterThanOrEqual(6144);
    expect(sample.guestRamRssKiB).toBeLessThan(8192);
    expect(sample.vmmRssKiB).toBe(sample.rssKiB - sample.guestRamRssKiB);
    expect(result.rows[0]).toMatchObject({ metric: 'VMM Rss without guest RAM', unit: 'MiB', better: 'lower' });
    expect(result.rows[0].value).toBeCloseTo(sample.vmmRssKiB / 1024, 10);
    expect(result.rows[0].baseline.value).toBeGreaterThan(5);
  });
});

describe('ddread.mjs', () => {
  it('times the guest runs by markers 2/3 and reads the same file on the host', { timeout: 180_000 }, () => {
    const result = resultOf('ddread.mjs', { ...fakeEnv, HYPE_BENCH_DD_MIB: '16' });
    expect(result.data.fileMiB).toBe(16);
    expect(result.data.runs).toBe(3);
    expect(result.data.markerIntervalsMs).toHaveLength(3);
    expect(result.data.hostMBps.n).toBe(5);
    const [guest] = result.rows;
    expect(guest).toMatchObject({ unit: 'MB/s', better: 'higher', baseline: { name: 'host read, 1 MiB reads' } });
    const mbps = result.data.markerIntervalsMs.map((ms: number) => (16 * 1024 * 1024) / (ms / 1000) / 1e6).sort((a: number, b: number) => a - b);
    expect(guest.value).toBeCloseTo(mbps[1], 6);
  });
});

describe('run.mjs', () => {
  it('gathers the results into the report and the table, exit 0 when nothing crashed', { timeout: 300_000 }, () => {
    const report = join(tmp, 'report.json');
    const r = runScript('run.mjs', { ...fakeEnv, HYPE_BENCH_REPORT: report, HYPE_BENCH_BOOTS: '1', HYPE_BENCH_MEM_RUNS: '1', HYPE_BENCH_DD_MIB: '16' }, [
      'ddread',
      'boot',
      'memory',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(report, 'utf8'));
    expect(json.schema).toBe(1);
    expect(json.benchmarks.map((b: { bench: string; status: string }) => [b.bench, b.status])).toEqual([
      ['boot', 'ok'],
      ['memory', 'ok'],
      ['ddread', 'ok'],
    ]);
    expect(r.stdout).toMatch(/^boot +boot to \/init: spawn to marker \(wall\) +\d/m);
    expect(r.stdout).toMatch(/^memory +VMM Rss without guest RAM +[\d.]+ MiB/m);
    expect(r.stdout).toContain(`report: ${report}`);
    expect(r.stderr).toMatch(/^\[boot\] boot: 1\/1: boot marker at/m);
  });

  it('reports a crashed benchmark with the reason and exits 1', { timeout: 120_000 }, () => {
    const report = join(tmp, 'crash.json');
    const r = runScript('run.mjs', { ...fakeEnv, HYPE_BENCH_REPORT: report, FAKE_HYPE_EXIT: '5', HYPE_BENCH_BOOTS: '1' }, ['boot']);
    expect(r.status).toBe(1);
    const [boot] = JSON.parse(readFileSync(report, 'utf8')).benchmarks;
    expect(boot).toMatchObject({ bench: 'boot', status: 'crashed', exitCode: 1 });
    expect(boot.reason).toMatch(/^exit status 1: /);
    expect(r.stdout).toMatch(/^boot +CRASHED: exit status 1/m);
    expect(r.stderr).toMatch(/1 benchmark\(s\) crashed: boot/);
  });

  it('rejects an unknown benchmark name', () => {
    const r = runScript('run.mjs', {}, ['nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown benchmark "nope"; known: handoff, blk, hostile, boot, memory, ddread');
  });
});
