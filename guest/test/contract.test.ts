import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  blkInputText,
  blkPattern,
  consoleTestText,
  consoleTestTranscript,
  DEFAULT_BUSYBOX,
  guestTestCmdline,
  AGENT_VERDICT_PATH,
  GUEST_TESTS,
  guestPath,
  parseGuestTestOutput,
  resultFields,
  SMP_BUSY_LOOP_RESULT,
  VDC_WRITE_LENGTH,
  VDC_WRITE_OFFSET,
} from '@hype/guest';

const hasBusybox = existsSync(DEFAULT_BUSYBOX);
if (!hasBusybox) console.warn('[hype] /bin/busybox absent: skipping the shell-vs-TypeScript contract checks');

/** Runs a function of guest/rootfs/usr/lib/hype/test-lib.sh with the host's busybox (same binary as the guest's). */
function guestShell(call: string): Buffer {
  return execFileSync(DEFAULT_BUSYBOX, ['sh', '-c', `. "$1" && ${call}`, 'sh', guestPath('rootfs/usr/lib/hype/test-lib.sh')], {
    maxBuffer: 64 * 1024 * 1024,
  });
}

describe('test data generators', () => {
  it('have the documented sizes and shapes', () => {
    expect(consoleTestText()).toHaveLength(4672);
    expect(consoleTestText().split('\n')[1]).toBe('hype-console 0001 the quick brown fox jumps over the lazy dog 0123456789');
    expect(blkInputText()).toHaveLength(8192);
    expect(blkPattern(0, 48).toString()).toBe('hype-blk-000000\nhype-blk-000001\nhype-blk-000002\n');
    expect(blkPattern(20, 6).toString()).toBe('-blk-0'); // line 1 from its 5th byte
    expect(blkPattern(16 * 0xabcdef, 16).toString()).toBe('hype-blk-abcdef\n');
    expect(VDC_WRITE_OFFSET % 512).toBe(0);
    expect(VDC_WRITE_LENGTH % 512).toBe(0);
    expect(VDC_WRITE_OFFSET % 4096).not.toBe(0);
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) sum += i % 7;
    expect(SMP_BUSY_LOOP_RESULT).toBe(sum);
  });

  it('makes every 512-byte sector of a disk distinct', () => {
    const disk = blkPattern(0, 1 << 20);
    const sectors = new Set<string>();
    for (let s = 0; s < disk.length; s += 512) sectors.add(disk.subarray(s, s + 512).toString());
    expect(sectors.size).toBe(2048);
  });
});

describe.skipIf(!hasBusybox)('the guest shell generators match the TypeScript ones byte for byte', () => {
  it('console text', () => {
    expect(guestShell('hype_console_text').toString()).toBe(consoleTestText());
  });
  it('vda input text', () => {
    expect(guestShell('hype_blk_input_text').toString()).toBe(blkInputText());
  });
  it('block pattern, from 0 and from the vdc offset', () => {
    expect(guestShell('hype_blk_pattern 0 262144').equals(blkPattern(0, 4 << 20))).toBe(true);
    expect(guestShell(`hype_blk_pattern ${VDC_WRITE_OFFSET / 16} ${VDC_WRITE_LENGTH / 16}`).equals(blkPattern(VDC_WRITE_OFFSET, VDC_WRITE_LENGTH))).toBe(true);
  });
  it('busy loop result', () => {
    expect(guestShell('hype_busy_loop').toString()).toBe(`${SMP_BUSY_LOOP_RESULT}\n`);
  });
});

describe('parseGuestTestOutput', () => {
  it('collects results, the done line, dmesg lines and the console exchange from noisy output', () => {
    const output =
      '[    0.5] virtio_blk virtio1: [vda] 32768 512-byte logical blocks\r\n' +
      'HYPE-TEST boot PASS kernel=6.1.192 uptime=1.25s\r\n' +
      consoleTestTranscript() +
      'HYPE-CONSOLE-ECHO hello host 42\n' +
      'HYPE-TEST console PASS sent=4672 received=13\r\n' +
      'HYPE-TEST blk.vdb FAIL ro=0 write-accepted=yes intact=no\r\n' +
      'HYPE-DMESG [ 2.0] I/O error, dev vdb\r\n' +
      'HYPE-TEST-DONE pass=2 fail=1\r\n';
    const report = parseGuestTestOutput(output);
    expect(report.results.map((r) => [r.name, r.status])).toEqual([
      ['boot', 'PASS'],
      ['console', 'PASS'],
      ['blk.vdb', 'FAIL'],
    ]);
    expect(resultFields(report.results[0])).toEqual({ kernel: '6.1.192', uptime: '1.25s' });
    expect(report.done).toEqual({ pass: 2, fail: 1 });
    expect(report.dmesg).toEqual(['[ 2.0] I/O error, dev vdb']);
    expect(report.consoleText).toBe(consoleTestText());
    expect(report.consoleEcho).toBe('hello host 42');
  });

  it('reports no done line when the runner did not finish', () => {
    const report = parseGuestTestOutput('HYPE-TEST boot PASS kernel=x\n');
    expect(report.done).toBeUndefined();
    expect(report.consoleText).toBeUndefined();
  });
});

describe('guestTestCmdline', () => {
  it('writes hype.test= and hype.cpus= and rejects unknown names', () => {
    expect(guestTestCmdline(['all'], { cpus: 2 })).toBe('hype.test=all hype.cpus=2');
    expect(guestTestCmdline(['boot', 'blk.vda'])).toBe('hype.test=boot,blk.vda');
    expect(() => guestTestCmdline(['boot', 'disk' as 'blk'])).toThrow(/unknown guest test "disk"/);
    expect(() => guestTestCmdline([])).toThrow(/at least one/);
    expect(() => guestTestCmdline(['smp'], { cpus: 0 })).toThrow(/positive integer/);
  });

  it('names exactly the checks the guest runner knows', () => {
    const runner = readFileSync(guestPath('rootfs/usr/lib/hype/run-tests'), 'utf8');
    const cases = [...runner.matchAll(/^\t\t([a-z.]+)\) test_/gm)].map((m) => m[1]);
    expect(cases).toEqual([...GUEST_TESTS]);
  });

  it('the agent check waits for the verdict where the host writes it', () => {
    const runner = readFileSync(guestPath('rootfs/usr/lib/hype/run-tests'), 'utf8');
    expect(/^AGENT_DONE_FILE=(\S+)$/m.exec(runner)?.[1]).toBe(AGENT_VERDICT_PATH);
  });
});
