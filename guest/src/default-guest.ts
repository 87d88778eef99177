import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureAgent } from './agent.js';
import { hypeCacheDir } from './cache.js';
import { buildInitrd, DEFAULT_BUSYBOX } from './initrd.js';
import { memoized } from './memo.js';
import { guestPath } from './paths.js';
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

/**
 * What the default initrd is made of: busybox, the agent binary, every file and directory of
 * guest/rootfs, and the builder's own code. While none of them changed, the last initrd is reused
 * without reading them (under emulation, reading and packing them took seconds of every start).
 */
function initrdInputs(): string[] {
  const files = [DEFAULT_BUSYBOX, ensureAgent().path, fileURLToPath(import.meta.url)];
  const walk = (dir: string) => {
    files.push(dir);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(guestPath('rootfs'));
  return files;
}

function ensureInitrd(cacheDir: string, progress: (line: string) => void, reportCached: boolean): string {
  let built = false;
  const path = memoized(
    `default initrd in ${cacheDir}`,
    initrdInputs(),
    () => {
      built = true;
      return buildInitrdFile(cacheDir, progress, reportCached);
    },
    cacheDir,
    existsSync,
  );
  if (!built && reportCached) progress(`guest initrd: cached in ${path}`);
  return path;
}

function buildInitrdFile(cacheDir: string, progress: (line: string) => void, reportCached: boolean): string {
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
