/**
 * Answers of slow host queries (dpkg-query walks dpkg's whole database, ~200 ms; `gcc --version`) kept in
 * `<cache>/memo.json` while the files they derive from are unchanged, so that `hype run` does not ask
 * them again at every start. A file's identity is its size, mtime and ctime; an answer is reused only
 * when every file it names has the identity it had when the answer was computed. Nothing here is
 * required: without a writable cache the queries simply run.
 */
import { lstatSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hypeCacheDir } from './cache.js';

/** dpkg rewrites this file whenever a package is installed, removed or upgraded. */
export const DPKG_STATUS_FILE = '/var/lib/dpkg/status';

type MemoFile = Record<string, { files: string; value: unknown }>;

/** Bounds the file: answers beyond this many are dropped (oldest first). */
const MAX_ENTRIES = 64;

function identity(path: string): string | undefined {
  try {
    // No inode: the nested rig sees this file system through 9p, which renumbers inodes, and should
    // still find what the host remembered (its view of the cache is read-only). A replaced file has
    // a new ctime.
    const st = statSync(path, { bigint: true });
    return `${path}@${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

function read(path: string): MemoFile {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as MemoFile) : {};
  } catch {
    return {};
  }
}

/** The identities of `files` joined, or undefined when one of them cannot be stat'ed. */
export function fingerprint(files: readonly string[]): string | undefined {
  const ids = files.map(identity);
  return ids.some((id) => id === undefined) ? undefined : ids.join('|');
}

/**
 * `compute()`'s value for `key`, reused while the `files` are unchanged (all of them must exist: a
 * missing file disables the memo for this call). Values must survive JSON.
 */
export function memoized<T>(
  key: string,
  files: readonly string[],
  compute: () => T,
  cacheDir = hypeCacheDir(),
  /** A remembered value still usable? (e.g. the file it names still exists) */
  valid: (value: T) => boolean = () => true,
): T {
  const current = fingerprint(files);
  if (current === undefined) return compute();
  const path = join(cacheDir, 'memo.json');
  const memo = read(path);
  const hit = memo[key];
  if (hit !== undefined && hit.files === current && valid(hit.value as T)) return hit.value as T;
  const value = compute();
  store(cacheDir, memo, key, { files: current, value });
  return value;
}

/** What remember() keeps: the value and the files it was made from, named, since recall() has no list of its own. */
interface Recorded {
  inputs: string[];
  value: unknown;
}

/**
 * The value remember() kept for `key`, while every file it was recorded with still has the identity it
 * had then (and `valid(value)`); undefined otherwise. For results whose inputs are only known once they
 * are computed (a directory walk): one read of the memo file and a stat per input.
 */
export function recall<T>(key: string, cacheDir = hypeCacheDir(), valid: (value: T) => boolean = () => true): T | undefined {
  const hit = read(join(cacheDir, 'memo.json'))[key];
  const recorded = hit?.value as Recorded | undefined;
  if (recorded === undefined || recorded === null || !Array.isArray(recorded.inputs) || !recorded.inputs.every((f) => typeof f === 'string')) return undefined;
  if (fingerprint(recorded.inputs) !== hit!.files) return undefined;
  return valid(recorded.value as T) ? (recorded.value as T) : undefined;
}

/**
 * Keeps `value` for recall() under `key` with the files it was made from and their identities as
 * `files` had them (a fingerprint() taken before the value was computed, so that a file changed meanwhile
 * makes the next recall() miss). Nothing is kept when `files` is undefined.
 */
export function remember(key: string, inputs: readonly string[], files: string | undefined, value: unknown, cacheDir = hypeCacheDir()): void {
  if (files === undefined) return;
  store(cacheDir, read(join(cacheDir, 'memo.json')), key, { files, value: { inputs: [...inputs], value } satisfies Recorded });
}

function store(cacheDir: string, memo: MemoFile, key: string, entry: MemoFile[string]): void {
  const path = join(cacheDir, 'memo.json');
  try {
    delete memo[key];
    memo[key] = entry;
    const keys = Object.keys(memo);
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_ENTRIES))) delete memo[old];
    mkdirSync(cacheDir, { recursive: true });
    if (lstatSync(cacheDir).isDirectory()) {
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(memo));
      renameSync(tmp, path);
    }
  } catch {
    // A read-only cache only costs the query next time.
  }
}
