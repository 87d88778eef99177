/**
 * Node.js conveniences: the gzip decompressor (node:zlib) and a file-reading front end to `loadLinux`.
 * Kept out of the main entry so the loader core stays free of node:* imports.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type InitrdSource, type LinuxBootOptions, type LinuxBootSetup, loadLinux } from './boot.js';
import { type Decompressors, builtinDecompressors } from './compression.js';
import { LoaderError } from './errors.js';
import type { GuestMemory } from './memory.js';

/** Largest output buffer gunzipBounded allocates up front (a bigger claim gets output in pieces of this size). */
const GUNZIP_MAX_CHUNK = 128 * 1024 * 1024;

/**
 * gunzip that stops at the size the gzip trailer (ISIZE) gives: a stream holding more (a decompression
 * bomb, or several members) fails without its whole output being allocated.
 *
 * The output goes into one buffer of the expected size (plus the byte that tells "more"), not node's
 * default 16 KiB pieces joined at the end: a 16 MiB kernel was a thousand small allocations that glibc
 * then kept in the process's heap for good (megabytes of VMM memory), and a copy of it all (slower).
 */
export function gunzipBounded(data: Uint8Array, expectedSize: number): Uint8Array {
  try {
    // maxOutputLength must be at least 1; a 0-byte claim then fails the caller's size check.
    const maxOutputLength = Math.max(1, expectedSize);
    return gunzipSync(data, { maxOutputLength, chunkSize: Math.max(64, Math.min(maxOutputLength + 1, GUNZIP_MAX_CHUNK)) });
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

/** A file's failure to open or read as a one-line error naming it (`initrd /x: no such file`). */
function bootFileError(e: unknown, path: string, what: 'kernel' | 'initrd'): LoaderError {
  const err = e as NodeJS.ErrnoException;
  const why =
    err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
  return new LoaderError('format', `${what} ${path}: ${why}`);
}

/** Read a whole file, turning a failure into a one-line error naming it (`initrd /x: no such file`). */
export function readBootFile(path: string, what: 'kernel' | 'initrd'): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw bootFileError(e, path, what);
  }
}

/**
 * An initrd file as the loader's InitrdSource: its size from fstat, its bytes read straight into guest
 * memory (no copy of a multi-MiB file held by the VMM, where glibc's heap would keep the pages after it is
 * freed). Something other than a regular file (a pipe, /proc) is read whole first. Close it after the load.
 */
export function openInitrdFile(path: string): { source: Uint8Array | InitrdSource; close(): void } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw bootFileError(e, path, 'initrd');
  }
  const close = () => closeSync(fd);
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw bootFileError(Object.assign(new Error('is a directory'), { code: 'EISDIR' }), path, 'initrd');
    if (!stat.isFile()) return { source: readBootFile(path, 'initrd'), close };
    const size = stat.size;
    const read = (into: Uint8Array): void => {
      let done = 0;
      try {
        while (done < into.length) {
          const n = readSync(fd, into, done, into.length - done, done);
          if (n === 0) break;
          done += n;
        }
      } catch (e) {
        throw bootFileError(e, path, 'initrd');
      }
      if (done !== into.length) throw new LoaderError('format', `initrd ${path}: ${done} bytes read, ${into.length} expected (did the file change?)`);
    };
    return { source: { size, read }, close };
  } catch (e) {
    close();
    throw e;
  }
}

export interface LinuxBootFiles extends Omit<LinuxBootOptions, 'kernel' | 'kernelName' | 'initrd' | 'initrdName'> {
  kernelPath: string;
  initrdPath?: string;
  /** The kernel file's bytes when the caller has read them already (they are not read again). */
  kernelBytes?: Uint8Array;
}

/**
 * `loadLinux` from files on disk, with Node's decompressors (gzip, lz4) for host-side unpacking. The
 * initrd goes from its file straight into guest memory.
 */
export function loadLinuxFiles(mem: GuestMemory, opts: LinuxBootFiles): LinuxBootSetup {
  const { kernelPath, initrdPath, kernelBytes, decompressors, ...rest } = opts;
  const kernel = kernelBytes ?? readBootFile(kernelPath, 'kernel');
  const initrd = initrdPath === undefined ? undefined : openInitrdFile(initrdPath);
  try {
    return loadLinux(mem, {
      ...rest,
      kernel,
      kernelName: kernelPath,
      initrd: initrd?.source,
      initrdName: initrdPath,
      decompressors: { ...nodeDecompressors, ...decompressors },
    });
  } finally {
    initrd?.close();
  }
}
