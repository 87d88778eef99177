import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeFs, type HostFs } from '../src/host-fs.js';
import type { InspectKernel } from '../src/validate.js';

export const MiB = 1024 * 1024;

/** A kernel image for tests: the fake inspector below accepts files that start with this tag. */
export const FAKE_KERNEL_TAG = 'FAKEKERNEL';

/** Accepts `FAKEKERNEL <memoryEnd in MiB>`; anything else fails with a loader-like message. */
export const fakeInspectKernel: InspectKernel = (image) => {
  const text = new TextDecoder().decode(image);
  const match = /^FAKEKERNEL (\d+)/.exec(text);
  if (!match) throw new Error('not a bzImage or ELF vmlinux (no HdrS magic at 0x202, no ELF magic)');
  return { memoryEnd: Number(match[1]) * MiB };
};

export interface Workdir {
  dir: string;
  file(name: string, content: string | Uint8Array): string;
  kernel(name?: string, memoryEndMiB?: number): string;
}

export function workdir(): Workdir {
  const dir = mkdtempSync(join(tmpdir(), 'hype-cli-test-'));
  const file = (name: string, content: string | Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  return {
    dir,
    file,
    kernel: (name = 'bzImage', memoryEndMiB = 20) => file(name, `${FAKE_KERNEL_TAG} ${memoryEndMiB}`),
  };
}

export function subdir(parent: string, name: string): string {
  const path = join(parent, name);
  mkdirSync(path);
  return path;
}

function errno(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

/**
 * The real file system, except that `denied` paths fail access() with EACCES for the given modes
 * (tests run as root here, where permissions never deny).
 */
export function fsDenying(denied: Record<string, number>): HostFs {
  return {
    ...nodeFs,
    access: async (path, mode) => {
      const deniedModes = denied[path];
      if (deniedModes !== undefined && (deniedModes & mode) !== 0) throw errno('EACCES', 'access', path);
      return nodeFs.access(path, mode);
    },
  };
}
