import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildInitrd, ensureKernel, hypeCacheDir } from '@hype/guest';
import type { DefaultGuest, DefaultGuestFiles } from './ports.js';

/**
 * Which of the cached kernel artifacts `hype run` boots: the ELF vmlinux, loaded as is. The bzImage
 * would work too, but its gzip payload would be inflated twice per run (the boot check, then the load).
 */
export const DEFAULT_KERNEL_ARTIFACT = 'vmlinux';

/**
 * The initrd is rebuilt in memory on every run (busybox and guest/rootfs, well under a second) and
 * stored under a name derived from its contents, so editing guest/rootfs takes effect at once and
 * unchanged contents are written only once.
 */
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

/** The default guest from @hype/guest: the kernel built and cached by ensureKernel(), and hype's initrd. */
export const packagedDefaultGuest: DefaultGuest = {
  async ensure(progress, reportCached = false): Promise<DefaultGuestFiles> {
    const kernel = await ensureKernel({
      onProgress: (p) => {
        if (p.phase !== 'cached' || reportCached) progress(`guest kernel: ${p.message}`);
      },
    });
    const initrd = ensureInitrd(hypeCacheDir(), progress, reportCached);
    return { kernel: kernel[DEFAULT_KERNEL_ARTIFACT], initrd };
  },
};
