/**
 * Host-side ext4 image helpers for guest tests, built on Debian's e2fsprogs: `mke2fs -d` fills an image
 * from a folder without root or loop mounts, `debugfs` reads files back out of it.
 */
import { execFileSync, spawnSync } from './child-process.js';
import { closeSync, existsSync, openSync, ftruncateSync, statSync } from 'node:fs';

const E2FSPROGS_HINT = 'apt-get install e2fsprogs';

function tool(name: string): string {
  for (const dir of ['/sbin', '/usr/sbin', '/bin', '/usr/bin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  throw new Error(`${name} not found: ${E2FSPROGS_HINT}`);
}

/**
 * Creates (or overwrites) `path` as an ext4 file system of `sizeMiB` MiB holding the contents of `dir`
 * (owned by root, label `hype`).
 */
export function makeExt4Image(dir: string, path: string, sizeMiB: number): void {
  if (!Number.isInteger(sizeMiB) || sizeMiB < 2) throw new Error(`makeExt4Image: sizeMiB must be an integer >= 2, got ${sizeMiB}`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`makeExt4Image: ${dir} is not a directory`);
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, sizeMiB * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  const result = spawnSync(
    tool('mke2fs'),
    ['-q', '-F', '-t', 'ext4', '-L', 'hype', '-E', 'root_owner=0:0', '-d', dir, path],
    { encoding: 'utf8' },
  );
  if (result.error) throw new Error(`mke2fs could not run: ${result.error.message} (${E2FSPROGS_HINT})`);
  if (result.status !== 0) {
    throw new Error(`mke2fs -d ${dir} ${path} failed (exit ${result.status}): ${(result.stderr || result.stdout).trim()}`);
  }
}

/** Reads one file out of an ext4 image (absolute path inside the file system). */
export function readExt4File(image: string, path: string): Buffer {
  if (!existsSync(image)) throw new Error(`readExt4File: image ${image} does not exist`);
  if (!path.startsWith('/')) throw new Error(`readExt4File: path must be absolute inside the image, got ${path}`);
  if (/["\n\\]/.test(path)) throw new Error(`readExt4File: unsupported character in ${JSON.stringify(path)}`);
  // debugfs prints its banner and errors on stderr and exits 0 even when the file is missing, so the
  // file type is checked first with `stat`.
  const stat = spawnSync(tool('debugfs'), ['-R', `stat "${path}"`, image], { encoding: 'utf8' });
  if (stat.error) throw new Error(`debugfs could not run: ${stat.error.message} (${E2FSPROGS_HINT})`);
  const type = /Type: (\S+)/.exec(stat.stdout)?.[1];
  if (type !== 'regular') {
    const why = stat.stderr.split('\n').find((l) => l.includes(path) || /not found|error/i.test(l)) ?? `type ${type ?? 'unknown'}`;
    throw new Error(`readExt4File: ${path} in ${image} is not a regular file: ${why.trim()}`);
  }
  return execFileSync(tool('debugfs'), ['-R', `cat "${path}"`, image], {
    maxBuffer: 1024 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

/** Runs `e2fsck -fn` on an image; returns its report, throwing when it finds errors. */
export function checkExt4Image(image: string): string {
  const result = spawnSync(tool('e2fsck'), ['-f', '-n', image], { encoding: 'utf8' });
  if (result.error) throw new Error(`e2fsck could not run: ${result.error.message} (${E2FSPROGS_HINT})`);
  const report = `${result.stdout}${result.stderr}`.trim();
  if (result.status !== 0) throw new Error(`e2fsck -fn ${image} found problems (exit ${result.status}):\n${report}`);
  return report;
}
