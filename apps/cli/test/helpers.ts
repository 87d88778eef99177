import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { configFromJson } from '../src/config-file.js';
import { nodeFs, type HostFs } from '../src/host-fs.js';
import { UsageError } from '../src/usage-error.js';

export const MiB = 1024 * 1024;

/**
 * A minimal x86-64 ELF vmlinux the real loader accepts: one PT_LOAD segment of `memsz` bytes at physical
 * `paddr` (16 MiB, like Linux), entry at its start; the segment's file part is 16 bytes of `hlt`.
 */
export function elfKernel(options: { paddr?: number; memsz?: number } = {}): Uint8Array {
  const paddr = options.paddr ?? 16 * MiB;
  const memsz = options.memsz ?? 4 * MiB;
  const codeOffset = 0x1000;
  const code = new Uint8Array(16).fill(0xf4);
  const bytes = new Uint8Array(codeOffset + code.length);
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2 /* ELFCLASS64 */, 1 /* little-endian */, 1 /* EV_CURRENT */]);
  dv.setUint16(16, 2, true); // e_type ET_EXEC
  dv.setUint16(18, 62, true); // e_machine EM_X86_64
  dv.setUint32(20, 1, true); // e_version
  dv.setBigUint64(24, BigInt(paddr), true); // e_entry (vmlinux: physical startup_64)
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(52, 64, true); // e_ehsize
  dv.setUint16(54, 56, true); // e_phentsize
  dv.setUint16(56, 1, true); // e_phnum
  const ph = 64;
  dv.setUint32(ph + 0, 1, true); // PT_LOAD
  dv.setUint32(ph + 4, 5, true); // R+X
  dv.setBigUint64(ph + 8, BigInt(codeOffset), true); // p_offset
  dv.setBigUint64(ph + 16, 0xffffffff81000000n, true); // p_vaddr
  dv.setBigUint64(ph + 24, BigInt(paddr), true); // p_paddr
  dv.setBigUint64(ph + 32, BigInt(code.length), true); // p_filesz
  dv.setBigUint64(ph + 40, BigInt(memsz), true); // p_memsz
  dv.setBigUint64(ph + 48, 0x200000n, true); // p_align
  bytes.set(code, codeOffset);
  return bytes;
}

export interface Workdir {
  dir: string;
  file(name: string, content: string | Uint8Array): string;
  /** An ELF vmlinux (see elfKernel) occupying [16 MiB, 16 MiB + memsz). */
  kernel(name?: string, memsz?: number): string;
}

/** Every workdir of this test file, removed when the file's tests are done. */
const workdirs: string[] = [];
afterAll(() => {
  for (const dir of workdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function workdir(): Workdir {
  const dir = mkdtempSync(join(tmpdir(), 'hype-cli-test-'));
  workdirs.push(dir);
  const file = (name: string, content: string | Uint8Array) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  return {
    dir,
    file,
    kernel: (name = 'vmlinux', memsz = 4 * MiB) => file(name, elfKernel({ memsz })),
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

/** The one-line UsageError configFromJson gives for `json` (as read from /cfg/vm.json). */
export function jsonError(json: unknown): string {
  try {
    configFromJson(json, 'vm.json', '/cfg');
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected configFromJson to fail');
}
