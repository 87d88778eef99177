import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundleIsCurrent, cachedRequire, cacheFileFor, hypeCacheRoot } from '../src/code-cache.js';
import { BIN, CLI_DIR, ensureBuiltBin } from './bin-process.js';
import { spawnSync } from 'node:child_process';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hype-code-cache-'));
});
afterEach(() => {
  chmodSync(dir, 0o755);
  rmSync(dir, { recursive: true, force: true });
});

function writeModule(source: string): string {
  const file = join(dir, 'mod.cjs');
  writeFileSync(file, source);
  return file;
}

describe('cachedRequire', () => {
  it('runs the file as CommonJS with require, module, __filename and __dirname', () => {
    const file = writeModule('module.exports = { path: require("node:path").basename(__filename), dir: __dirname, self: typeof exports };');
    const result = cachedRequire({ file, cacheDir: undefined });
    expect(result.cache).toBe('off');
    expect(result.exports).toEqual({ path: 'mod.cjs', dir, self: 'object' });
  });

  it('misses, writes the cache, then hits it', () => {
    const file = writeModule('exports.answer = () => 42;');
    const cacheDir = join(dir, 'cache', 'cli');
    const first = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(first.cache).toBe('miss');
    expect((first.exports as { answer(): number }).answer()).toBe(42);
    first.writeCache();
    expect(readdirSync(cacheDir)).toEqual([first.cacheFile!.slice(cacheDir.length + 1)]);
    const second = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(second.cache).toBe('hit');
    expect((second.exports as { answer(): number }).answer()).toBe(42);
  });

  it('never runs old code: the cache is keyed by the source, even at the same length', () => {
    const cacheDir = join(dir, 'cache');
    const file = writeModule('exports.value = 1;');
    cachedRequire({ file, cacheDir, writeAtExit: false }).writeCache();
    writeModule('exports.value = 2;');
    const result = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(result.cache).toBe('miss');
    expect(result.exports).toEqual({ value: 2 });
    result.writeCache();
    expect(readdirSync(cacheDir)).toHaveLength(1); // the old build's cache is removed
  });

  it('keeps each install\'s cache in a shared directory (two checkouts do not evict each other), and drops another install\'s cache unused for 30 days', () => {
    const cacheDir = join(dir, 'cache');
    const install = (name: string, source: string) => {
      mkdirSync(join(dir, name), { recursive: true });
      const file = join(dir, name, 'main.cjs');
      writeFileSync(file, source);
      return file;
    };
    const a = install('a', 'exports.who = "a";');
    const b = install('b', 'exports.who = "b";');
    const first = cachedRequire({ file: a, cacheDir, writeAtExit: false });
    first.writeCache();
    cachedRequire({ file: b, cacheDir, writeAtExit: false }).writeCache();
    expect(readdirSync(cacheDir)).toHaveLength(2);
    expect(cachedRequire({ file: a, cacheDir, writeAtExit: false }).cache).toBe('hit');
    expect(cachedRequire({ file: b, cacheDir, writeAtExit: false }).cache).toBe('hit');
    // a's cache, last written 31 days ago, goes when b writes its next build's
    const old = (Date.now() - 31 * 24 * 3600 * 1000) / 1000;
    utimesSync(first.cacheFile!, old, old);
    writeFileSync(b, 'exports.who = "b2";');
    const rebuilt = cachedRequire({ file: b, cacheDir, writeAtExit: false });
    rebuilt.writeCache();
    expect(readdirSync(cacheDir)).toEqual([basename(rebuilt.cacheFile!)]);
  });

  it('a short run\'s cache is replaced by a complete one from the first run that reaches far, which later runs keep', () => {
    const file = writeModule('exports.start = () => 1; exports.far = () => 2;');
    const cacheDir = join(dir, 'cache');
    const short = cachedRequire({ file, cacheDir, writeAtExit: false });
    short.writeCache(); // as at the exit of a run that stopped early
    expect(readdirSync(cacheDir)).toEqual([basename(short.cacheFile!)]);

    const far = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect([far.cache, far.complete]).toEqual(['hit', false]);
    far.reachedFar();
    expect(far.cacheFile).toMatch(/\.complete\.bin$/);
    far.writeCache();
    expect(readdirSync(cacheDir)).toEqual([basename(far.cacheFile!)]); // the short run's cache is gone

    const later = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect([later.cache, later.complete]).toEqual(['hit', true]);
    expect((later.exports as { far(): number }).far()).toBe(2);
    later.reachedFar(); // already complete: nothing to write
    expect(later.cacheFile).toBe(far.cacheFile);
  });

  it('a complete cache V8 refuses (another Node flag) is replaced by a plain one from a short run, never marked complete by it', () => {
    const source = 'exports.value = 7;';
    const file = writeModule(source);
    const cacheDir = join(dir, 'cache');
    mkdirSync(cacheDir, { mode: 0o700 });
    // (Not compiled in this process before: V8 would take its in-memory compilation and ignore the file.)
    writeFileSync(cacheFileFor(cacheDir, file, source).replace(/\.bin$/, '.complete.bin'), 'garbage', { mode: 0o600 });
    const short = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(short.cache).toBe('rejected');
    expect(short.cacheFile).not.toMatch(/complete/);
    short.writeCache();
    expect(readdirSync(cacheDir)).toEqual([basename(short.cacheFile!)]);
    const next = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect([next.cache, next.complete]).toEqual(['hit', false]);
  });

  it('compiles from source when the cache file is not V8 code cache', () => {
    const cacheDir = join(dir, 'cache');
    const file = writeModule('exports.value = 3;');
    mkdirSync(cacheDir);
    writeFileSync(cacheFileFor(cacheDir, file, 'exports.value = 3;'), 'garbage');
    const result = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(result.cache).toBe('rejected');
    expect(result.exports).toEqual({ value: 3 });
  });

  it('ignores a cache directory it cannot create or write', () => {
    const file = writeModule('exports.value = 4;');
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, '');
    const result = cachedRequire({ file, cacheDir: join(blocker, 'cache'), writeAtExit: false });
    expect(result.cache).toBe('off');
    expect(result.exports).toEqual({ value: 4 });
    expect(() => result.writeCache()).not.toThrow();
  });
});

describe('cachedRequire trusts only a private cache', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hype-code-cache-trust-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the cache directory private, and uses no cache in a directory others can write or beside a cache file they could have planted', () => {
    const file = join(dir, 'module.cjs');
    writeFileSync(file, 'exports.value = 5;');
    const cacheDir = join(dir, 'cache');
    const first = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(first.cache).toBe('miss');
    expect(statSync(cacheDir).mode & 0o777).toBe(0o700);
    first.writeCache();
    expect(cachedRequire({ file, cacheDir, writeAtExit: false }).cache).toBe('hit');

    chmodSync(first.cacheFile!, 0o666);
    expect(cachedRequire({ file, cacheDir, writeAtExit: false }).cache).toBe('off');
    chmodSync(first.cacheFile!, 0o600);
    chmodSync(cacheDir, 0o777);
    const shared = cachedRequire({ file, cacheDir, writeAtExit: false });
    expect(shared.cache).toBe('off');
    expect(shared.exports).toEqual({ value: 5 });
  });
});

describe('bundleIsCurrent', () => {
  it('is current while no existing input is newer than the bundle', () => {
    const bundle = writeModule('');
    writeFileSync(join(dir, 'input.js'), '');
    writeFileSync(join(dir, 'inputs.json'), JSON.stringify(['input.js', 'missing/elsewhere.js']));
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'input.js'), past, past);
    expect(bundleIsCurrent(bundle, join(dir, 'inputs.json'))).toBe(true);
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'input.js'), future, future);
    expect(bundleIsCurrent(bundle, join(dir, 'inputs.json'))).toBe(false);
  });

  it('is not current without a readable manifest', () => {
    const bundle = writeModule('');
    expect(bundleIsCurrent(bundle, join(dir, 'none.json'))).toBe(false);
    writeFileSync(join(dir, 'bad.json'), '{');
    expect(bundleIsCurrent(bundle, join(dir, 'bad.json'))).toBe(false);
  });
});

describe('hypeCacheRoot', () => {
  it('follows HYPE_CACHE_DIR, then an absolute XDG_CACHE_HOME, then HOME', () => {
    expect(hypeCacheRoot({ HYPE_CACHE_DIR: '/c' })).toBe('/c');
    expect(hypeCacheRoot({ XDG_CACHE_HOME: '/x', HOME: '/h' })).toBe('/x/hype');
    expect(hypeCacheRoot({ XDG_CACHE_HOME: 'rel', HOME: '/h' })).toBe('/h/.cache/hype');
  });

  // A copy of @hype/guest's hypeCacheDir (bin.cjs must not load @hype/guest to find the code cache): the twins must agree.
  it('agrees with @hype/guest hypeCacheDir', async () => {
    const { hypeCacheDir } = await import('@hype/guest');
    const envs = [{ HYPE_CACHE_DIR: '/c', HOME: '/h' }, { HYPE_CACHE_DIR: '', XDG_CACHE_HOME: '/x', HOME: '/h' }, { XDG_CACHE_HOME: 'rel', HOME: '/h' }, { XDG_CACHE_HOME: '', HOME: '/h' }];
    for (const env of envs) expect(hypeCacheRoot(env), JSON.stringify(env)).toBe(hypeCacheDir(env));
  });
});

describe('the built bundle (dist/main.cjs)', () => {
  it('starts without node:crypto (loading it cost more than the code cache saves on a slow machine), node:child_process and the ES module loader', async () => {
    await ensureBuiltBin();
    const preload = join(dir, 'list-modules.cjs');
    writeFileSync(preload, "process.on('exit', () => require('node:fs').writeSync(2, `modules: ${process.moduleLoadList.join(',')}\\n`));");
    const cacheDir = join(dir, 'cache');
    // The first run (a `run` that stops at a bad flag) compiles and writes the cache; the second loads it.
    for (const args of [['run', '--mem', 'lots'], ['run', '--mem', 'lots']]) {
      const child = spawnSync(process.execPath, ['--require', preload, BIN, ...args], { encoding: 'utf8', env: { ...process.env, HYPE_CACHE_DIR: cacheDir } });
      expect(child.status).toBe(2);
      expect(readdirSync(join(cacheDir, 'code-cache', 'cli'))).toHaveLength(1);
      const modules = /modules: (.*)/.exec(child.stderr)?.[1].split(',') ?? [];
      expect(modules).toContain('NativeModule zlib');
      expect(modules.filter((m) => /crypto/.test(m))).toEqual([]);
      // Loaded where they are used (a build, the rig, passt, an xz kernel),
      // not by every start: commander's child_process is made lazy in the bundle (tsup.config.ts).
      expect(modules.filter((m) => /^NativeModule (child_process|dgram|fs\/promises)$/.test(m))).toEqual([]);
      // bin.cjs is CommonJS: no ES module was linked (Node loads the loader's first modules regardless).
      expect(modules.filter((m) => /esm\/(module_job|translators)/.test(m))).toEqual([]);
    }
  }, 120_000);

  it('has no import() left (vm.Script gives it no module loader: --net user failed there once) and every workspace package inside', async () => {
    await ensureBuiltBin();
    const bundle = readFileSync(join(CLI_DIR, 'dist', 'main.cjs'), 'utf8');
    expect(bundle.length).toBeGreaterThan(100_000);
    expect(bundle.match(/\bimport\(\s*["'`]/g) ?? []).toEqual([]);
    expect(bundle).toContain('require("dgram")'); // virtio-net's import('node:dgram'), compiled to require
    expect(bundle.match(/require\("@hype\/[^"]*"\)/g) ?? []).toEqual([]);
    // The default guest too (it finds its files by its package name, not by the bundle's place).
    expect(bundle).toContain('function ensureDefaultGuest(');
    expect(bundle).toContain('packageDir("@hype/guest",');
  }, 120_000);
});
