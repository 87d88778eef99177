import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoized } from '../src/memo.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hype-memo-test-'));
  dirs.push(dir);
  return dir;
}

describe('memoized', () => {
  it('reuses an answer while its files are unchanged, and asks again when one changes', () => {
    const dir = tempDir();
    const file = join(dir, 'status');
    writeFileSync(file, 'a');
    let calls = 0;
    const ask = () => ++calls;
    expect(memoized('q', [file], ask, dir)).toBe(1);
    expect(memoized('q', [file], ask, dir)).toBe(1);
    expect(memoized('other', [file], ask, dir)).toBe(2);
    writeFileSync(file, 'bb'); // size changes
    expect(memoized('q', [file], ask, dir)).toBe(3);
    utimesSync(file, new Date(), new Date(Date.now() + 5000)); // mtime changes
    expect(memoized('q', [file], ask, dir)).toBe(4);
    expect(memoized('q', [file], ask, dir)).toBe(4);
  });

  it('asks every time when a file is missing, and keeps null answers', () => {
    const dir = tempDir();
    let calls = 0;
    expect(memoized('q', [join(dir, 'nope')], () => ++calls, dir)).toBe(1);
    expect(memoized('q', [join(dir, 'nope')], () => ++calls, dir)).toBe(2);
    const file = join(dir, 'f');
    writeFileSync(file, '');
    expect(memoized('n', [file], () => (calls++, null), dir)).toBe(null);
    expect(memoized('n', [file], () => (calls++, null), dir)).toBe(null);
    expect(calls).toBe(3);
  });

  it('survives a corrupt memo file and an unusable cache directory', () => {
    const dir = tempDir();
    const file = join(dir, 'f');
    writeFileSync(file, '');
    writeFileSync(join(dir, 'memo.json'), '{not json');
    expect(memoized('q', [file], () => 7, dir)).toBe(7);
    expect(JSON.parse(readFileSync(join(dir, 'memo.json'), 'utf8')).q.value).toBe(7);
    expect(memoized('q', [file], () => 8, join(file, 'not-a-dir'))).toBe(8);
  });

  it('keeps at most 64 answers', () => {
    const dir = tempDir();
    const file = join(dir, 'f');
    writeFileSync(file, '');
    for (let i = 0; i < 100; i++) memoized(`k${i}`, [file], () => i, dir);
    const memo = JSON.parse(readFileSync(join(dir, 'memo.json'), 'utf8'));
    expect(Object.keys(memo)).toHaveLength(64);
    expect(memo.k99.value).toBe(99);
    expect(memo.k0).toBeUndefined();
  });
});
