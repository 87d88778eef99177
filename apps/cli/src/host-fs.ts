import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import type { KernelImage } from '@hype/linux-loader';
import { kernelFile } from '@hype/linux-loader/node';

export interface FileStat {
  isFile(): boolean;
  isDirectory(): boolean;
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
  size: number;
}

/** The file system calls the CLI's checks make; injected so tests can simulate EACCES as root. */
export interface HostFs {
  stat(path: string): Promise<FileStat>;
  /** Resolves if `path` can be opened with `mode` (fs.constants.R_OK / W_OK), rejects with an errno error. */
  access(path: string, mode: number): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  /**
   * The kernel as the loader reads it (`kernelFile` of @hype/linux-loader/node: an ELF is read from the
   * file when loaded, a bzImage whole). Without it the kernel is `readFile`'s bytes.
   */
  openKernel?(path: string): Promise<KernelImage>;
}

/**
 * The real file system. The calls are synchronous behind the promises: at start-up nothing else waits for
 * the event loop, and each asynchronous call was a round trip through libuv's thread pool (tens of
 * milliseconds of hype's start-up under emulation for a handful of stat and access calls).
 */
export const nodeFs: HostFs = {
  stat: async (path) => statSync(path),
  access: async (path, mode) => accessSync(path, mode),
  readFile: async (path) => readFileSync(path),
  openKernel: async (path) => kernelFile(path),
};

export const { R_OK, W_OK } = constants;

export function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
