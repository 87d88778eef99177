import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint, memoized, recall, remember } from '../src/memo.js';

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

describe('recall and remember', () => {
  it('gives back a value while every file it was recorded with is unchanged', () => {
    const dir = tempDir();
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    const files = [tree, join(tree, 'a'), join(tree, 'b')];
    writeFileSync(files[1], 'a');
    writeFileSync(files[2], 'b');
    expect(recall('k', dir)).toBeUndefined();
    remember('k', files, fingerprint(files), { answer: 1 }, dir);
    expect(recall('k', dir)).toEqual({ answer: 1 });
    expect(recall('other', dir)).toBeUndefined();
    expect(recall('k', dir, () => false)).toBeUndefined(); // no longer valid by the caller's check

    writeFileSync(files[2], 'bb'); // a recorded file changed
    expect(recall('k', dir)).toBeUndefined();
    remember('k', files, fingerprint(files), { answer: 2 }, dir);
    expect(recall('k', dir)).toEqual({ answer: 2 });
    writeFileSync(join(tree, 'c'), 'c'); // a file added: the directory's identity changes
    expect(recall('k', dir)).toBeUndefined();
    remember('k', files, fingerprint(files), { answer: 3 }, dir);
    rmSync(files[1]); // a recorded file removed
    expect(recall('k', dir)).toBeUndefined();
  });

  it('keeps the identities taken before the value was computed: a file changed meanwhile makes the next recall miss', () => {
    const dir = tempDir();
    const file = join(dir, 'input');
    writeFileSync(file, 'old');
    const before = fingerprint([file]);
    writeFileSync(file, 'new!'); // changed while the value was being computed from 'old'
    remember('k', [file], before, 'from old', dir);
    expect(recall('k', dir)).toBeUndefined();
    remember('k', [file], fingerprint([join(dir, 'missing')]), 'x', dir); // an input that cannot be stat'ed: nothing kept
    expect(JSON.parse(readFileSync(join(dir, 'memo.json'), 'utf8')).k.value).toEqual({ inputs: [file], value: 'from old' });
  });

  it('ignores an entry of another shape under the key, and an unreadable memo file', () => {
    const dir = tempDir();
    const file = join(dir, 'f');
    writeFileSync(file, '');
    memoized('k', [file], () => 5, dir); // a memoized() answer: no recorded inputs
    expect(recall('k', dir)).toBeUndefined();
    writeFileSync(join(dir, 'memo.json'), JSON.stringify({ k: { files: '', value: { inputs: [1], value: 2 } } }));
    expect(recall('k', dir)).toBeUndefined();
    writeFileSync(join(dir, 'memo.json'), '{not json');
    expect(recall('k', dir)).toBeUndefined();
  });
});
