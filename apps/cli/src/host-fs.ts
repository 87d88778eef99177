import { constants, promises as fsp } from 'node:fs';
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

export const nodeFs: HostFs = {
  stat: (path) => fsp.stat(path),
  access: (path, mode) => fsp.access(path, mode),
  readFile: (path) => fsp.readFile(path),
  openKernel: async (path) => kernelFile(path),
};

export const { R_OK, W_OK } = constants;

export function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
