/** Where hype keeps built guest artifacts, and the key that names a kernel build. */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { sha256Hex } from './hash.js';
import type { KconfigValue } from './kconfig.js';

/**
 * Bumped whenever the build driver changes in a way that changes the artifacts (commands, flags,
 * environment); part of the cache key.
 */
export const KERNEL_BUILD_DRIVER_VERSION = 1;

/**
 * Where hype caches what it builds or downloads (the guest kernel and initrd, the nested rig's kernel):
 * `$HYPE_CACHE_DIR`, else `$XDG_CACHE_HOME/hype`, else `~/.cache/hype`. An empty variable counts as unset,
 * and a relative `XDG_CACHE_HOME` is ignored (the XDG Base Directory spec says so). apps/cli/rig/kvm-in-qemu.sh
 * resolves the same directory in shell.
 */
export function hypeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.HYPE_CACHE_DIR;
  if (override !== undefined && override !== '') return override;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'hype');
  const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir();
  return join(home, '.cache', 'hype');
}

export interface KernelCacheKeyInputs {
  /** The parsed config fragment: comments and line order do not change the key, values do. */
  fragment: Map<string, KconfigValue>;
  /** The linux-source package version (e.g. `6.1.192-2`), or a fingerprint of the source tarball. */
  sourceVersion: string;
  driverVersion?: number;
}

/** 16 hex digits of SHA-256 over the normalized inputs. */
export function kernelCacheKey(inputs: KernelCacheKeyInputs): string {
  const options = [...inputs.fragment.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`);
  const canonical = JSON.stringify({
    fragment: options,
    source: inputs.sourceVersion,
    driver: inputs.driverVersion ?? KERNEL_BUILD_DRIVER_VERSION,
  });
  return sha256Hex([canonical], 16);
}

/** The directory holding one kernel build: `<cache>/kernel-<key>/{bzImage,vmlinux,config,build.json}`. */
export function kernelCacheEntry(cacheDir: string, key: string): string {
  return join(cacheDir, `kernel-${key}`);
}
