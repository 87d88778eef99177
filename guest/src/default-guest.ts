import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hypeCacheDir } from './cache.js';
import { buildInitrd } from './initrd.js';
import { ensureKernel, type KernelArtifacts, type KernelBuildOptions } from './kernel.js';

export interface DefaultGuestFiles {
  /** The ELF vmlinux: loaded as is (the bzImage's payload would be inflated on every boot). */
  kernel: string;
  /** hype's initrd (busybox, guest/rootfs, the guest agent), shell mode. */
  initrd: string;
  /** Every kernel artifact (bzImage too). */
  artifacts: KernelArtifacts;
}

export interface DefaultGuestOptions extends KernelBuildOptions {
  /** One line per step (and one per artifact found in the cache when `reportCached`). */
  progress?: (line: string) => void;
  reportCached?: boolean;
}

/**
 * hype's default guest, ready to boot: the kernel built and cached by ensureKernel() (minutes, once per
 * config), and the initrd, rebuilt in memory on each call (well under a second) and stored under a name
 * derived from its contents, so edits to guest/rootfs take effect at once and unchanged contents are
 * written once.
 */
export async function ensureDefaultGuest(options: DefaultGuestOptions = {}): Promise<DefaultGuestFiles> {
  const { progress = () => {}, reportCached = false, ...kernelOptions } = options;
  const artifacts = await ensureKernel({
    ...kernelOptions,
    onProgress: (p) => {
      kernelOptions.onProgress?.(p);
      if (p.phase !== 'cached' || reportCached) progress(`guest kernel: ${p.message}`);
    },
  });
  const initrd = ensureInitrd(kernelOptions.cacheDir ?? hypeCacheDir(), progress, reportCached);
  return { kernel: artifacts.vmlinux, initrd, artifacts };
}

function ensureInitrd(cacheDir: string, progress: (line: string) => void, reportCached: boolean): string {
  const archive = buildInitrd();
  const hash = createHash('sha256').update(archive).digest('hex').slice(0, 16);
  const path = join(cacheDir, `initrd-${hash}.cpio`);
  if (existsSync(path)) {
    if (reportCached) progress(`guest initrd: cached in ${path}`);
    return path;
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, archive);
  renameSync(tmp, path);
  progress(`guest initrd: built ${path} (${Math.round(archive.length / 1024)} KiB)`);
  return path;
}
