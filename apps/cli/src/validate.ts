import { type KernelImage, LoaderError } from '@hype/linux-loader';
import type { DiskSpec } from '@hype/virtio-blk/node';
import { MAX_VIRTIO_DEVICES } from '@hype/vm';
import { errnoCode, R_OK, W_OK, type HostFs } from './host-fs.js';
import type { OptionOrigins, RunOptions } from './options.js';

/** What a dry run of the boot needs: the kernel image, the initrd size and the VM shape. */
export interface BootCheck {
  kernel: KernelImage;
  /** How errors name the kernel (its path). */
  kernelName: string;
  /** 0 without an initrd. */
  initrdBytes: number;
  initrdName?: string;
  memMiB: number;
  cpus: number;
  cmdline?: string;
}

/**
 * Checks that this kernel can boot with this initrd in this much memory, as the loader will do it, without
 * a VM. Throws @hype/linux-loader's LoaderError (one-line message, `kind` 'format', 'unsupported',
 * 'memory', 'cmdline' or 'decompress') when it cannot.
 */
export type CheckBoot = (check: BootCheck) => void;

/** The loader's verdict on a boot, or undefined if it is fine; errors other than LoaderError are bugs and rethrown. */
export function bootProblem(checkBoot: CheckBoot, check: BootCheck): { kind: string; message: string } | undefined {
  try {
    checkBoot(check);
    return undefined;
  } catch (error) {
    if (!(error instanceof LoaderError)) throw error;
    return { kind: error.kind, message: error.message };
  }
}

export interface InputCheck {
  errors: string[];
  /** The kernel image (bytes, or an ELF to be read from its file), when a kernel was given and is readable. */
  kernelImage?: KernelImage;
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

async function readKernel(label: string, path: string, fs: HostFs): Promise<KernelImage | string> {
  const size = await checkReadableFile(label, path, fs);
  if (typeof size === 'string') return size;
  if (size === 0) return `${label} ${path}: the file is empty, not a kernel`;
  try {
    return await (fs.openKernel ? fs.openKernel(path) : fs.readFile(path));
  } catch (error) {
    return `${label} ${path}: cannot read it: ${describeErrno((error as Error).cause ?? error)}`;
  }
}

async function checkDisk(label: string, disk: DiskSpec, fs: HostFs, warnings: string[]): Promise<string | undefined> {
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
 * Checks every input file the options name: the kernel and initrd (readable, not empty; the kernel is
 * read for the boot check), file disks (readable, writable unless read-only, not empty).
 * Returns every problem found, each as one line naming the flag and the file.
 */
export async function checkInputs(
  options: RunOptions,
  origins: OptionOrigins,
  fs: HostFs,
  warnings: string[] = [],
  nicCount = 0,
  vsock = false,
): Promise<InputCheck> {
  const result: InputCheck = { errors: [] };
  if (options.kernel !== undefined) {
    const kernel = await readKernel(origins.kernel ?? '--kernel', options.kernel, fs);
    if (typeof kernel === 'string') result.errors.push(kernel);
    else result.kernelImage = kernel;
  }
  if (options.initrd !== undefined) {
    const label = origins.initrd ?? '--initrd';
    const size = await checkReadableFile(label, options.initrd, fs);
    if (typeof size === 'string') result.errors.push(size);
    else if (size === 0) result.errors.push(`${label} ${options.initrd}: the file is empty, not an initramfs`);
    else result.initrdBytes = size;
  }
  const disks = options.disks ?? [];
  const taken = [
    ...((options.console ?? 'hvc') === 'hvc' ? ['the virtio console'] : []),
    ...((options.rng ?? true) ? ['the entropy device (--rng off frees it)'] : []),
    ...(nicCount > 0 ? [`${nicCount} network interface${nicCount > 1 ? 's' : ''}`] : []),
    ...(vsock ? ['the vsock device (for -- CMD or --vsock)'] : []),
  ];
  const slotsTaken = taken.length + Math.max(0, nicCount - 1);
  const maxDisks = MAX_VIRTIO_DEVICES - slotsTaken;
  if (disks.length > maxDisks) {
    result.errors.push(`${origins.disks?.[maxDisks] ?? '--disk'}: ${disks.length} disks, at most ${maxDisks} (hype has ${MAX_VIRTIO_DEVICES} virtio slots${taken.length > 0 ? `; taken: ${taken.join(', ')}` : ''})`);
    return result;
  }
  for (const [index, disk] of disks.entries()) {
    const error = await checkDisk(origins.disks?.[index] ?? '--disk', disk, fs, warnings);
    if (error) result.errors.push(error);
  }
  return result;
}
