import { describe, expect, it } from 'vitest';
import { formatResultLine, parseResultLines, RESULT_PREFIX, resultProblems, row, skippedRow } from '../lib/result.mjs';

const ok = {
  bench: 'x',
  title: 'a benchmark',
  status: 'ok',
  rows: [row('latency', 30, 'µs', 'lower', { name: 'C loop', value: 10 })],
  data: { n: 1 },
};

describe('row', () => {
  it('computes the ratio from the baseline', () => {
    expect(row('m', 30, 'ms', 'lower', { name: 'b', value: 10 }, 'n')).toEqual({
      metric: 'm', value: 30, unit: 'ms', better: 'lower', baseline: { name: 'b', value: 10 }, ratio: 3, note: 'n',
    });
  });
  it('leaves the ratio out for a zero baseline and everything optional out when absent', () => {
    expect(row('m', 30, 'ms', 'lower', { name: 'b', value: 0 })).not.toHaveProperty('ratio');
    expect(Object.keys(row('m', 1, 'ms', 'lower'))).toEqual(['metric', 'value', 'unit', 'better']);
  });
});

describe('resultProblems', () => {
  it('accepts a valid ok result, a skipped one and skipped rows', () => {
    expect(resultProblems(ok)).toEqual([]);
    expect(resultProblems({ bench: 'x', status: 'skipped', reason: 'needs /dev/kvm' })).toEqual([]);
    expect(resultProblems({ ...ok, rows: [...ok.rows, skippedRow('KVM exits', 'needs /dev/kvm')] })).toEqual([]);
  });
  it('names each problem', () => {
    expect(resultProblems(null)).toEqual(['not a JSON object']);
    expect(resultProblems([])).toEqual(['not a JSON object']);
    expect(resultProblems({ status: 'ok', rows: [] })).toEqual(['"bench" must be a non-empty string']);
    expect(resultProblems({ bench: 'x', status: 'fine' })).toEqual(['"status" must be "ok" or "skipped", got "fine"']);
    expect(resultProblems({ bench: 'x', status: 'skipped' })).toEqual(['a skipped result needs a "reason"']);
    expect(resultProblems({ bench: 'x', status: 'ok' })).toEqual(['"rows" must be an array']);
    expect(
      resultProblems({
        bench: 'x',
        status: 'ok',
        rows: [
          { metric: '', value: Number.NaN, unit: 1, better: 'up', baseline: { name: 'b' }, ratio: 'x' },
          { metric: 'm', skipped: '' },
        ],
      }),
    ).toEqual([
      'rows[0].metric must be a non-empty string',
      'rows[0].value must be a finite number',
      'rows[0].unit must be a string',
      'rows[0].better must be "lower" or "higher"',
      'rows[0].baseline must be { name: string, value: finite number }',
      'rows[0].ratio must be a finite number',
      'rows[1].skipped must be a non-empty string (the reason)',
    ]);
  });
});

describe('result lines', () => {
  it('round-trips a result through its line', () => {
    const line = formatResultLine(ok);
    expect(line.startsWith(RESULT_PREFIX)).toBe(true);
    expect(line).not.toContain('\n');
    expect(parseResultLines(`progress\n${line}\nmore text\n`)).toEqual({ results: [ok], problems: [] });
  });
  it('refuses to format a malformed result', () => {
    expect(() => formatResultLine({ bench: 'x', status: 'ok' })).toThrow(/bench\/README\.md: "rows" must be an array/);
  });
  it('tolerates \\r\\n line ends', () => {
    expect(parseResultLines(`${formatResultLine(ok)}\r\n`).results).toEqual([ok]);
  });
  it('reports no line, two lines, bad JSON and a bad shape', () => {
    expect(parseResultLines('just text\n')).toEqual({ results: [], problems: [] });
    const line = formatResultLine(ok);
    expect(parseResultLines(`${line}\n${line}\n`).problems).toEqual(['2 BENCH-RESULT lines, expected one']);
    expect(parseResultLines(`${RESULT_PREFIX}{oops\n`).problems[0]).toMatch(/^a BENCH-RESULT line is not valid JSON/);
    expect(parseResultLines(`${RESULT_PREFIX}{"bench":"x","status":"skipped"}\n`).problems).toEqual(['a skipped result needs a "reason"']);
  });
});
