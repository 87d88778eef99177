import type { DiskConfig } from '@hype/vm';
import { errnoCode, R_OK, W_OK, type HostFs } from './host-fs.js';
import type { OptionOrigins, RunOptions } from './options.js';
import { formatSize, MiB } from './size.js';

/** What the CLI needs to know about a kernel image before booting it. */
export interface KernelInfo {
  /** Guest-physical address just past everything the kernel occupies while it boots (image + bss/init). */
  memoryEnd: number;
}

/**
 * Validates a kernel image (bzImage or ELF vmlinux) as the loader will see it. Throws an Error whose
 * message says what is wrong ("not a bzImage or ELF: ...", "boot protocol 2.05 is too old", ...).
 */
export type InspectKernel = (image: Uint8Array) => KernelInfo;

/**
 * Memory a guest needs besides the kernel image and initrd: page tables, struct pages, the first
 * processes. A guess on the generous side of what a small kernel needs, so that a "too small" verdict
 * is certain and a boot that passes has a chance.
 */
export const KERNEL_WORKING_MIB = 16;

export interface InputCheck {
  errors: string[];
  /** Set when a kernel was given and is valid. */
  kernel?: KernelInfo;
  /** Size of the initrd, when one was given and is readable. */
  initrdBytes?: number;
}

function describeErrno(error: unknown): string {
  const code = errnoCode(error);
  if (code === 'ENOENT') return 'no such file';
  if (code === 'ENOTDIR') return 'no such file (a parent is not a directory)';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'too many symbolic links';
  return (error as Error).message;
}

/** Checks that `path` is a readable regular file; returns its size, or an error line. */
async function checkReadableFile(label: string, path: string, fs: HostFs): Promise<number | string> {
  let stat;
  try {
    stat = await fs.stat(path);
  } catch (error) {
    return `${label} ${path}: ${describeErrno(error)}`;
  }
  if (stat.isDirectory()) return `${label} ${path}: is a directory, not a file`;
  if (!stat.isFile()) return `${label} ${path}: not a regular file`;
  try {
    await fs.access(path, R_OK);
  } catch (error) {
    return `${label} ${path}: cannot read it: ${describeErrno(error)}`;
  }
  return stat.size;
}

async function checkKernel(label: string, path: string, fs: HostFs, inspect: InspectKernel): Promise<KernelInfo | string> {
  const size = await checkReadableFile(label, path, fs);
  if (typeof size === 'string') return size;
  if (size === 0) return `${label} ${path}: the file is empty, not a kernel`;
  let image: Uint8Array;
  try {
    image = await fs.readFile(path);
  } catch (error) {
    return `${label} ${path}: cannot read it: ${describeErrno(error)}`;
  }
  try {
    return inspect(image);
  } catch (error) {
    return `${label} ${path}: not a bootable kernel: ${(error as Error).message}`;
  }
}

async function checkDisk(label: string, disk: DiskConfig, fs: HostFs, warnings: string[]): Promise<string | undefined> {
  if (disk.kind !== 'file') return undefined;
  const { path } = disk;
  let stat;
  try {
    stat = await fs.stat(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      return `${label} ${path}: no such file; create it first (e.g. truncate -s 1G ${path}) or use --disk mem:SIZE`;
    }
    return `${label} ${path}: ${describeErrno(error)}`;
  }
  if (stat.isDirectory()) return `${label} ${path}: is a directory; a disk is a raw image file`;
  if (!stat.isFile() && !stat.isBlockDevice()) return `${label} ${path}: not a regular file or block device`;
  try {
    await fs.access(path, R_OK);
  } catch (error) {
    return `${label} ${path}: cannot read it: ${describeErrno(error)}`;
  }
  if (!disk.readOnly) {
    try {
      await fs.access(path, W_OK);
    } catch (error) {
      return `${label} ${path}: cannot write it (${describeErrno(error)}); attach it read-only with ${path},ro`;
    }
  }
  if (stat.isFile() && stat.size === 0) {
    return `${label} ${path}: the image is empty (0 bytes); give it a size, e.g. truncate -s 1G ${path}`;
  }
  if (stat.isFile() && stat.size % 512 !== 0) {
    warnings.push(`${label} ${path}: ${stat.size} bytes is not a multiple of 512; the guest sees only whole sectors`);
  }
  return undefined;
}

/**
 * Checks every input file the options name: the kernel (readable, and valid according to the loader),
 * the initrd (readable, not empty), file disks (readable, writable unless read-only, not empty).
 * Returns every problem found, each as one line naming the flag and the file.
 */
export async function checkInputs(
  options: RunOptions,
  origins: OptionOrigins,
  fs: HostFs,
  inspect: InspectKernel,
  warnings: string[] = [],
): Promise<InputCheck> {
  const result: InputCheck = { errors: [] };
  if (options.kernel !== undefined) {
    const kernel = await checkKernel(origins.kernel ?? '--kernel', options.kernel, fs, inspect);
    if (typeof kernel === 'string') result.errors.push(kernel);
    else result.kernel = kernel;
  }
  if (options.initrd !== undefined) {
    const label = origins.initrd ?? '--initrd';
    const size = await checkReadableFile(label, options.initrd, fs);
    if (typeof size === 'string') result.errors.push(size);
    else if (size === 0) result.errors.push(`${label} ${options.initrd}: the file is empty, not an initramfs`);
    else result.initrdBytes = size;
  }
  const disks = options.disks ?? [];
  for (const [index, disk] of disks.entries()) {
    const error = await checkDisk(origins.disks?.[index] ?? '--disk', disk, fs, warnings);
    if (error) result.errors.push(error);
  }
  return result;
}

/** Guest RAM needed for a kernel and initrd: see KERNEL_WORKING_MIB. The initrd is counted twice: the
 * image itself and the files the kernel unpacks from it into RAM. */
export function requiredMemMiB(kernel: KernelInfo, initrdBytes: number): number {
  const bytes = kernel.memoryEnd + 2 * initrdBytes + KERNEL_WORKING_MIB * MiB;
  return Math.ceil(bytes / MiB);
}

/** One line when `memMiB` is too small for the kernel and initrd, else undefined. */
export function checkMemoryFits(memMiB: number, memLabel: string, kernel: KernelInfo, initrdBytes: number): string | undefined {
  const needed = requiredMemMiB(kernel, initrdBytes);
  if (memMiB >= needed) return undefined;
  const initrd = initrdBytes > 0 ? ` and the ${formatSize(Math.ceil(initrdBytes / MiB) * MiB)} initrd (unpacked in RAM)` : '';
  const suggestion = 2 ** Math.ceil(Math.log2(needed));
  return (
    `${memLabel} ${formatSize(memMiB * MiB)}: too small for the kernel (it ends at ${formatSize(Math.ceil(kernel.memoryEnd / MiB) * MiB)})` +
    `${initrd}: need at least ${needed}M; use --mem ${formatSize(suggestion * MiB)}`
  );
}
