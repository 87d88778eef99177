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
  const ids = files.map(identity);
  if (ids.some((id) => id === undefined)) return compute();
  const fingerprint = ids.join('|');
  const path = join(cacheDir, 'memo.json');
  const memo = read(path);
  const hit = memo[key];
  if (hit !== undefined && hit.files === fingerprint && valid(hit.value as T)) return hit.value as T;
  const value = compute();
  try {
    delete memo[key];
    memo[key] = { files: fingerprint, value };
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
  return value;
}
