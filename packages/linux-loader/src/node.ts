/**
 * Node.js conveniences: the gzip decompressor (node:zlib) and a file-reading front end to `loadLinux`.
 * Kept out of the main entry so the loader core stays free of node:* imports.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type LinuxBootOptions, type LinuxBootSetup, loadLinux } from './boot.js';
import { type Decompressors, builtinDecompressors } from './compression.js';
import { LoaderError } from './errors.js';
import type { GuestMemory } from './memory.js';

/**
 * gunzip that stops at the size the gzip trailer (ISIZE) gives: a stream holding more (a decompression
 * bomb, or several members) fails without its whole output being allocated.
 */
export function gunzipBounded(data: Uint8Array, expectedSize: number): Uint8Array {
  try {
    // maxOutputLength must be at least 1; a 0-byte claim then fails the caller's size check.
    return gunzipSync(data, { maxOutputLength: Math.max(1, expectedSize) });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new Error(`it holds more than the ${expectedSize} bytes its size trailer says`);
    }
    throw e;
  }
}

/**
 * xz through the `xz` command (xz-utils), output capped at the size trailer: distribution kernels
 * (Debian's among them) ship xz payloads, which a guest decompressing itself does slowly (minutes under
 * an instruction emulator).
 */
export function unxzBounded(data: Uint8Array, expectedSize: number): Uint8Array {
  try {
    return execFileSync('xz', ['-dc', '--single-stream'], { input: data, maxBuffer: Math.max(1, expectedSize), stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOBUFS') throw new Error(`it holds more than the ${expectedSize} bytes its size trailer says`);
    const detail = err.stderr?.toString().trim().split('\n')[0];
    throw new Error(`xz -dc failed: ${detail || err.message}`);
  }
}

/** Whether `xz` is on PATH (a file lookup, no process started). */
function hasXzCommand(): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, 'xz')));
}

/**
 * Host decompressors available under Node: gzip (node:zlib), lz4 (built in), and xz where the `xz`
 * command is installed (otherwise an xz kernel decompresses itself in the guest).
 */
export const nodeDecompressors: Decompressors = {
  ...builtinDecompressors,
  gzip: gunzipBounded,
  ...(hasXzCommand() ? { xz: unxzBounded } : {}),
};

/** Read a whole file, turning a failure into a one-line error naming it (`initrd /x: no such file`). */
export function readBootFile(path: string, what: 'kernel' | 'initrd'): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new LoaderError('format', `${what} ${path}: ${why}`);
  }
}

export interface LinuxBootFiles extends Omit<LinuxBootOptions, 'kernel' | 'kernelName' | 'initrd' | 'initrdName'> {
  kernelPath: string;
  initrdPath?: string;
  /** The kernel file's bytes when the caller has read them already (they are not read again). */
  kernelBytes?: Uint8Array;
}

/** `loadLinux` from files on disk, with Node's decompressors (gzip, lz4) for host-side unpacking. */
export function loadLinuxFiles(mem: GuestMemory, opts: LinuxBootFiles): LinuxBootSetup {
  const { kernelPath, initrdPath, kernelBytes, decompressors, ...rest } = opts;
  return loadLinux(mem, {
    ...rest,
    kernel: kernelBytes ?? readBootFile(kernelPath, 'kernel'),
    kernelName: kernelPath,
    initrd: initrdPath === undefined ? undefined : readBootFile(initrdPath, 'initrd'),
    initrdName: initrdPath,
    decompressors: { ...nodeDecompressors, ...decompressors },
  });
}
