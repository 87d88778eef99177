/**
 * Runs a CommonJS file through V8's code cache (the v8-compile-cache technique; Node 20 has no
 * module.enableCompileCache): the file is compiled by vm.Script with the bytes of an earlier compilation,
 * so V8 deserializes bytecode instead of parsing and compiling, which is most of hype's start-up on a
 * slow machine. The cache is a file under the hype cache directory named by the bundle's path (each
 * install keeps its own) and a checksum of the source, the Node version and the architecture, so changed
 * code never runs from an old cache (V8 itself only checks the source's length and its own version). The
 * checksum is zlib's CRC-32 and the length: the directory is private (no one else's bytes are trusted),
 * so what it has to catch is a rebuild, not an attacker, and node:crypto alone took longer to load than
 * the whole cache saved on a slow machine (Node without zlib.crc32, before 20.15, uses SHA-256).
 * Everything about the cache is optional: a missing, unreadable, rejected or unwritable cache falls back
 * silently to a plain compilation.
 *
 * This module must stay small and import only Node's built-ins: it runs before anything else.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { Script } from 'node:vm';
import * as zlib from 'node:zlib';

/** hype's cache root, as hypeCacheDir() of @hype/guest (not imported: it would load @hype/guest first). */
export function hypeCacheRoot(env: NodeJS.ProcessEnv): string | undefined {
  const override = env.HYPE_CACHE_DIR;
  if (override !== undefined && override !== '') return override;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'hype');
  try {
    const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir();
    return join(home, '.cache', 'hype');
  } catch {
    return undefined;
  }
}

/**
 * Whether the bundle `file` is at least as new as every input listed in `manifest` (a JSON array of paths
 * relative to the manifest's directory, written by the build) that exists here: in a source checkout, a
 * package rebuilt after the bundle means the bundle holds its old code. Inputs that do not exist (an
 * installed package, where the bundle is what was published) do not count; an unreadable manifest makes
 * the bundle not current.
 */
export function bundleIsCurrent(file: string, manifest: string): boolean {
  try {
    const inputs = JSON.parse(readFileSync(manifest, 'utf8')) as unknown;
    if (!Array.isArray(inputs)) return false;
    const built = statSync(file).mtimeMs;
    const base = dirname(manifest);
    return inputs.every((input) => {
      if (typeof input !== 'string') return false;
      const stat = statSync(resolve(base, input), { throwIfNoEntry: false });
      return stat === undefined || stat.mtimeMs <= built;
    });
  } catch {
    return false;
  }
}

export interface CachedRequireOptions {
  /** The CommonJS file to run (absolute path). */
  file: string;
  /** Where cache files go; undefined: no cache (a plain compilation). */
  cacheDir: string | undefined;
  /** Resolves the file's require() calls; default createRequire(file). */
  require?: NodeJS.Require;
  /**
   * Whether to write the cache at process exit when there was no usable one (the cache holds every
   * function compiled by then, so a run that went far makes the best cache). Default true.
   */
  writeAtExit?: boolean;
}

export interface CachedRequireResult {
  exports: unknown;
  /** 'hit': compiled from the cache; 'miss': no cache file; 'rejected': V8 refused it; 'off': no cacheDir. */
  cache: 'hit' | 'miss' | 'rejected' | 'off';
  /** The cache file's path (undefined when off): the one it was compiled from, else the one it writes. */
  cacheFile: string | undefined;
  /** Whether the cache it was compiled from was written by a run that called `reachedFar()`. */
  complete: boolean;
  /** Writes the cache file now, from what has been compiled so far (a no-op when off; failures ignored). */
  writeCache(): void;
  /**
   * This run went far (hype: a VM started), so what it compiles makes a complete cache: one is written at
   * exit unless the cache it was compiled from is complete already. A cache that a short run wrote (a
   * `hype run` that stopped at a bad flag) would otherwise leave the VM's code compiled at every start.
   */
  reachedFar(): void;
}

/** The CommonJS wrapper Node puts around a module's source (same parameters, same order). */
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) { ';
const WRAPPER_TAIL = '\n});';

/**
 * The cache file for `source`: named by the bundle's path (so that each hype install keeps its own cache
 * in a shared directory), then by the source's checksum and length with the Node version and
 * architecture, which V8's code depends on.
 */
export function cacheFileFor(cacheDir: string, file: string, source: string): string {
  const key = `${process.version}\0${process.arch}\0${file}\0${WRAPPER_HEAD}\0${WRAPPER_TAIL}\0`;
  return join(cacheDir, `${installTag(file)}-${checksum(key, source)}-${source.length}.bin`);
}

/** The first part of the cache file names of the bundle at `file` (its path's checksum). */
function installTag(file: string): string {
  return checksum('', file).slice(0, 8);
}

/** Other installs' caches unused this long are removed (one that is still used is written again). */
const STALE_CACHE_MS = 30 * 24 * 3600 * 1000;

function checksum(key: string, source: string): string {
  if (typeof zlib.crc32 === 'function') return (zlib.crc32(source, zlib.crc32(key)) >>> 0).toString(16).padStart(8, '0');
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return createHash('sha256').update(key).update(source).digest('hex').slice(0, 32);
}

/**
 * Whether cache files in `dir` may be trusted as code this process runs: the directory (created here,
 * private, when missing) and the cache files in it must belong to this user and be writable by no one
 * else. A shared or foreign HYPE_CACHE_DIR then only means no code cache, never someone else's bytecode.
 */
function safeCacheDir(dir: string): boolean {
  const uid = process.getuid?.();
  if (uid === undefined) return false;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const owned = (path: string) => {
      const stat = statSync(path);
      return stat.uid === uid && (stat.mode & 0o022) === 0;
    };
    return owned(dir) && readdirSync(dir).every((name) => !name.endsWith('.bin') || owned(join(dir, name)));
  } catch {
    return false; // not creatable or readable: no cache
  }
}

/** Loads `options.file` as CommonJS (like require) through the code cache; returns its module.exports. */
export function cachedRequire(options: CachedRequireOptions): CachedRequireResult {
  const { file } = options;
  const source = readFileSync(file, 'utf8');
  // A cache is written to `target`: the plain file, or the complete one once the run reached far.
  let target: string | undefined;
  let completeFile: string | undefined;
  let loadedFrom: string | undefined;
  let cachedData: Buffer | undefined;
  let complete = false;
  if (options.cacheDir !== undefined && safeCacheDir(options.cacheDir)) {
    target = cacheFileFor(options.cacheDir, file, source);
    completeFile = target.replace(/\.bin$/, '.complete.bin');
    for (const [path, isComplete] of [[completeFile, true], [target, false]] as const) {
      try {
        cachedData = readFileSync(path);
        loadedFrom = path;
        complete = isComplete;
        break;
      } catch {
        // no cache yet, or the directory is not readable: compile from the source
      }
    }
  }
  const script = new Script(WRAPPER_HEAD + source + WRAPPER_TAIL, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
  });
  const cache = target === undefined ? 'off' : cachedData === undefined ? 'miss' : script.cachedDataRejected === true ? 'rejected' : 'hit';
  const write = () => {
    if (target !== undefined) writeCache(script, target);
  };
  let atExit = (cache === 'miss' || cache === 'rejected') && options.writeAtExit !== false;
  if (atExit) process.once('exit', write);
  const reachedFar = () => {
    if (completeFile === undefined || (complete && cache === 'hit')) return;
    target = completeFile;
    if (!atExit) process.once('exit', write);
    atExit = true;
  };
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: unknown },
    filename: string,
    dirname: string,
  ) => void;
  const module = { exports: {} as unknown };
  wrapper.call(module.exports, module.exports, options.require ?? createRequire(file), module, file, dirname(file));
  return {
    exports: module.exports,
    cache,
    get cacheFile() {
      return cache === 'hit' && target !== completeFile ? loadedFrom : target;
    },
    complete: complete && cache === 'hit',
    writeCache: write,
    reachedFar,
  };
}

/**
 * Writes the script's code cache to `target` (whole or not at all) and removes the caches of earlier
 * builds of the same install (each is about a megabyte), and those of other installs not written for
 * STALE_CACHE_MS; failures are ignored.
 */
function writeCache(script: Script, target: string): void {
  const temporary = `${target}.${process.pid}.tmp`;
  try {
    const data = script.createCachedData();
    const dir = dirname(target);
    mkdirSync(dir, { recursive: true });
    writeFileSync(temporary, data);
    renameSync(temporary, target);
    const ours = basename(target).slice(0, basename(target).indexOf('-') + 1); // this install's tag
    const staleBefore = Date.now() - STALE_CACHE_MS;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!name.endsWith('.bin') || path === target) continue;
      if (name.startsWith(ours) || statSync(path).mtimeMs < staleBefore) rmSync(path, { force: true });
    }
  } catch {
    // a read-only or full cache directory: the next start compiles again
    try {
      rmSync(temporary, { force: true });
    } catch {
      // nothing to clean up
    }
  }
}
