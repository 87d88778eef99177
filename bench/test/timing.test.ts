import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { markerIntervals, parseDdreadLine } from '../lib/ddread.mjs';
import { kvmUnavailableReason, parseTimingLine, TIMING_PREFIX } from '../lib/hype.mjs';

describe('parseTimingLine', () => {
  it('reads the --timings events of bench/README.md', () => {
    expect(parseTimingLine('hype-timing {"event":"vm-created","ms":41.5}')).toEqual({ event: 'vm-created', ms: 41.5 });
    expect(parseTimingLine('hype-timing {"event":"boot-marker","ms":812.25,"value":1}\r')).toEqual({ event: 'boot-marker', ms: 812.25, value: 1 });
  });
  it('ignores other lines and malformed events', () => {
    expect(parseTimingLine('hype: the guest powered off')).toBeUndefined();
    expect(parseTimingLine(`${TIMING_PREFIX}{oops`)).toBeUndefined();
    expect(parseTimingLine(`${TIMING_PREFIX}null`)).toBeUndefined();
    expect(parseTimingLine(`${TIMING_PREFIX}{"ms":1}`)).toBeUndefined();
    expect(parseTimingLine(`${TIMING_PREFIX}{"event":"exit","ms":"12"}`)).toBeUndefined();
    expect(parseTimingLine(` ${TIMING_PREFIX}{"event":"exit","ms":12}`)).toBeUndefined();
  });
});

describe('kvmUnavailableReason', () => {
  it('names a missing device', () => {
    expect(kvmUnavailableReason({ HYPE_KVM_DEVICE: '/nonexistent/kvm' })).toBe('needs /nonexistent/kvm (absent on this host)');
  });
  it('accepts a readable and writable device', () => {
    expect(kvmUnavailableReason({ HYPE_KVM_DEVICE: '/dev/null' })).toBeUndefined();
  });
  it.skipIf(process.getuid?.() === 0)('names a device without read-write access', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hype-kvm-'));
    try {
      const device = join(dir, 'kvm');
      writeFileSync(device, '');
      chmodSync(device, 0o400);
      expect(kvmUnavailableReason({ HYPE_KVM_DEVICE: device })).toMatch(/^needs read-write access to .*kvm/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('guest ddread output', () => {
  it('parses the passing line among console noise, with extra fields', () => {
    const out = '[    1.2] virtio_blk virtio0: [vda] 524288 512-byte logical blocks\r\nHYPE-TEST ddread PASS bytes=268435456 runs=3 uptime-cs=21,19,20 time=0.71s\r\nHYPE-TEST-DONE pass=1 fail=0\n';
    expect(parseDdreadLine(out)).toEqual({ bytes: 268435456, runs: 3, uptimeCs: [21, 19, 20] });
  });
  it('has nothing for a failed or malformed line', () => {
    expect(parseDdreadLine('HYPE-TEST ddread FAIL run 0: dd status 1\n')).toBeUndefined();
    expect(parseDdreadLine('HYPE-TEST ddread PASS bytes=0 runs=3 uptime-cs=1,2,3\n')).toBeUndefined();
    expect(parseDdreadLine('HYPE-TEST ddread PASS bytes=512 runs=3 uptime-cs=1,2\n')).toBeUndefined();
    expect(parseDdreadLine('HYPE-TEST ddread PASS bytes=512 runs=1 uptime-cs=-1\n')).toBeUndefined();
    expect(parseDdreadLine('')).toBeUndefined();
  });
  it('pairs marker 2 with the next marker 3, on hype clock', () => {
    const events = [
      { event: 'boot-marker', value: 1, ms: 500 },
      { event: 'boot-marker', value: 2, ms: 1000 },
      { event: 'boot-marker', value: 3, ms: 1250.5 },
      { event: 'boot-marker', value: 3, ms: 1300 }, // no start: ignored
      { event: 'exit', ms: 1400 },
      { event: 'boot-marker', value: 2, ms: 2000 },
      { event: 'boot-marker', value: 2, ms: 2100 }, // a restart replaces the start
      { event: 'boot-marker', value: 3, ms: 2300 },
      { event: 'boot-marker', value: 2, ms: 3000 }, // never ended: ignored
    ];
    expect(markerIntervals(events)).toEqual([250.5, 200]);
  });
});
