import { describe, expect, it } from 'vitest';
import { row, skippedRow } from '../lib/result.mjs';
import { formatNumber, formatRatio, formatTable, formatValue } from '../lib/table.mjs';

describe('number formatting', () => {
  it('keeps about three significant digits', () => {
    expect(formatNumber(12345.6)).toBe('12346');
    expect(formatNumber(123.4)).toBe('123');
    expect(formatNumber(12.34)).toBe('12.3');
    expect(formatNumber(1.234)).toBe('1.23');
    expect(formatNumber(0.01234)).toBe('0.0123');
    expect(formatNumber(0)).toBe('0');
    expect(formatValue(12.34, 'ms')).toBe('12.3 ms');
    expect(formatValue(2, '')).toBe('2.00');
  });
  it('formats ratios with an x, nothing when there is none', () => {
    expect(formatRatio(0.4567)).toBe('0.46x');
    expect(formatRatio(12.34)).toBe('12.3x');
    expect(formatRatio(undefined)).toBe('');
  });
});

describe('formatTable', () => {
  const report = [
    {
      bench: 'boot',
      status: 'ok',
      rows: [row('boot to /init', 1234.5, 'ms', 'lower', { name: 'node -e 0', value: 40 }, 'median of 5'), row('no baseline', 7, 'MiB', 'lower')],
    },
    { bench: 'handoff', status: 'ok', rows: [row('simulated handoff', 2.5, 'µs', 'lower'), skippedRow('KVM exit round trip', 'needs /dev/kvm')] },
    { bench: 'memory', status: 'skipped', reason: 'needs /dev/kvm (absent on this host)' },
    { bench: 'ddread', status: 'crashed', reason: 'exit status 1: hype exited' },
  ];
  const lines = formatTable(report).split('\n');

  it('has a header, one line per row, and skipped/crashed lines', () => {
    expect(lines[0]).toMatch(/^bench\s+metric\s+hype\s+baseline\s+ratio\s+better$/);
    expect(lines[1]).toMatch(/^-+( +-+){5}$/);
    expect(lines[2]).toMatch(/^boot\s+boot to \/init\s+1235 ms\s+40\.0 ms node -e 0\s+30\.9x\s+lower$/);
    expect(lines[3]).toMatch(/^boot\s+no baseline\s+7\.00 MiB\s+lower$/);
    expect(lines[4]).toMatch(/^handoff\s+simulated handoff\s+2\.50 µs\s+lower$/);
    expect(lines[5]).toMatch(/^handoff\s+KVM exit round trip\s+skipped: needs \/dev\/kvm$/);
    expect(lines[6]).toMatch(/^memory\s+skipped: needs \/dev\/kvm \(absent on this host\)$/);
    expect(lines[7]).toMatch(/^ddread\s+CRASHED: exit status 1: hype exited$/);
  });
  it('aligns the columns', () => {
    const metricAt = lines[0].indexOf('metric');
    const hypeAt = lines[0].indexOf('hype');
    for (const l of lines.slice(2, 5)) {
      expect(l[metricAt - 1]).toBe(' ');
      expect(l[metricAt]).not.toBe(' ');
      expect(l[hypeAt]).not.toBe(' ');
    }
    // the free text of a skipped part starts in the hype column and does not widen it
    expect(lines[5].indexOf('skipped')).toBe(hypeAt);
    expect(lines[0].indexOf('baseline') - hypeAt).toBeLessThan('skipped: needs /dev/kvm'.length);
    expect(lines[0].length).toBeLessThan(90);
  });
  it('lists notes and explains the ratio', () => {
    const text = lines.join('\n');
    expect(text).toContain('notes:\n  boot / boot to /init: median of 5');
    expect(text).toContain('ratio = hype / baseline');
  });
});
