/**
 * Node.js conveniences: the gzip decompressor (node:zlib) and a file-reading front end to `loadLinux`.
 * Kept out of the main entry so the loader core stays free of node:* imports.
 */
import type * as ChildProcess from 'node:child_process';
import { type Stats, closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type InitrdSource, type LinuxBootOptions, type LinuxBootSetup, loadLinux } from './boot.js';
import { type Decompressors, builtinDecompressors } from './compression.js';
import { hasElfMagic } from './elf.js';
import type { KernelImage, KernelSource } from './kernel-source.js';
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
    // node:child_process (and node:net, node:dgram behind it) only for an xz kernel: not at every start.
    const { execFileSync } = createRequire(import.meta.url)('node:child_process') as typeof ChildProcess;
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
  // The errno error stays reachable (`cause`) for callers that word it their own way.
  return Object.assign(new LoaderError('format', `${what} ${path}: ${why}`), { cause: e });
}

/** Read a whole file, turning a failure into a one-line error naming it (`initrd /x: no such file`). */
export function readBootFile(path: string, what: 'kernel' | 'initrd'): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw bootFileError(e, path, what);
  }
}

/** Reads `into.length` bytes at `position` of an open file; returns how many it read (fewer at the end of the file). */
function readFully(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
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
      let done: number;
      try {
        done = readFully(fd, into, 0);
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

/**
 * A kernel file as the loader takes it. An ELF vmlinux (a regular file) is a KernelSource: the loader
 * reads its headers, then its segments straight into guest memory, never the whole file (symbols and
 * debug sections are a third of a vmlinux or more). Each read, or each batch of reads (a plan or a load:
 * KernelSource.batch), opens the file and checks it is the one first seen (device, inode, size,
 * modification time), so no descriptor stays open between a dry run and the load, and a kernel replaced
 * in between fails instead of loading a mix of two files. A bzImage (needed whole) or something other
 * than a regular file is read into memory.
 */
export function kernelFile(path: string): KernelImage {
  return withKernelFile(path, (fd) => {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw bootFileError(Object.assign(new Error('is a directory'), { code: 'EISDIR' }), path, 'kernel');
    const magic = new Uint8Array(4);
    const elf = stat.isFile() && readFully(fd, magic, 0) === magic.length && hasElfMagic(magic);
    // Anything else is read whole from the descriptor already open (a pipe cannot be opened twice).
    return elf ? elfFileSource(path, stat) : readFileSync(fd);
  });
}

/** `use(fd)` of the kernel file opened for reading, closed after; failures are LoaderErrors naming it. */
function withKernelFile<T>(path: string, use: (fd: number) => T): T {
  const fd = openKernelFile(path);
  try {
    return use(fd);
  } catch (e) {
    throw kernelFileError(e, path);
  } finally {
    closeSync(fd);
  }
}

/** A failure while reading the kernel file as a LoaderError naming it (LoaderErrors pass through). */
function kernelFileError(e: unknown, path: string): LoaderError {
  return e instanceof LoaderError ? e : bootFileError(e, path, 'kernel');
}

function openKernelFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw bootFileError(e, path, 'kernel');
  }
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function elfFileSource(path: string, first: Stats): KernelSource {
  const checkSame = (fd: number) => {
    if (!sameFile(fstatSync(fd), first)) throw new LoaderError('format', `kernel ${path}: the file changed while it was being loaded; start again`);
  };
  const readAt = (fd: number, into: Uint8Array, position: number) => {
    if (readFully(fd, into, position) !== into.length) throw new LoaderError('format', `kernel ${path}: the file ends before byte ${position + into.length} (did it change?)`);
  };
  let held: number | undefined; // the descriptor of the batch running now
  const source = {
    size: first.size,
    readAt(into: Uint8Array, position: number): void {
      const fd = held;
      if (fd === undefined) {
        source.batch(() => source.readAt(into, position)); // a batch of one read
        return;
      }
      try {
        readAt(fd, into, position);
      } catch (e) {
        throw kernelFileError(e, path);
      }
    },
    batch<T>(use: () => T): T {
      if (held !== undefined) return use();
      const fd = openKernelFile(path);
      try {
        try {
          checkSame(fd);
        } catch (e) {
          throw kernelFileError(e, path);
        }
        held = fd;
        return use();
      } finally {
        held = undefined;
        closeSync(fd);
      }
    },
  };
  return source;
}

export interface LinuxBootFiles extends Omit<LinuxBootOptions, 'kernel' | 'kernelName' | 'initrd' | 'initrdName'> {
  kernelPath: string;
  initrdPath?: string;
  /**
   * The kernel as the caller has it already (from `kernelFile(kernelPath)`, or the file's bytes): not
   * opened again.
   */
  kernelImage?: KernelImage;
}

/**
 * `loadLinux` from files on disk, with Node's decompressors (gzip, lz4) for host-side unpacking. An ELF
 * kernel's segments and the initrd go from their files straight into guest memory.
 */
export function loadLinuxFiles(mem: GuestMemory, opts: LinuxBootFiles): LinuxBootSetup {
  const { kernelPath, initrdPath, kernelImage, decompressors, ...rest } = opts;
  const kernel = kernelImage ?? kernelFile(kernelPath);
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
