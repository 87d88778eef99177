import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

export interface GuestKernel {
  dir: string;
  bzImage?: string;
  vmlinux?: string;
}

/**
 * The project's guest kernel: env HYPE_TEST_KERNEL (a kernel-<hash> directory, or a bzImage whose
 * directory may also hold the vmlinux), else the newest complete `kernel-*` directory of the guest cache
 * (see {@link hypeCache}).
 */
/** The hype cache root, as @hype/guest's hypeCacheDir(): HYPE_CACHE_DIR, else $XDG_CACHE_HOME/hype, else ~/.cache/hype. */
function hypeCache(): string {
  const { HYPE_CACHE_DIR, XDG_CACHE_HOME } = process.env;
  if (HYPE_CACHE_DIR) return HYPE_CACHE_DIR;
  if (XDG_CACHE_HOME && isAbsolute(XDG_CACHE_HOME)) return join(XDG_CACHE_HOME, 'hype');
  return join(homedir(), '.cache', 'hype');
}

export function findGuestKernel(): GuestKernel | undefined {
  const env = process.env.HYPE_TEST_KERNEL;
  if (env) {
    const dir = existsSync(env) && statSync(env).isDirectory() ? env : dirname(env);
    const bzImage = existsSync(env) && statSync(env).isFile() ? env : join(dir, 'bzImage');
    return describe(dir, bzImage);
  }
  const cache = hypeCache();
  if (!existsSync(cache)) return undefined;
  const dirs = readdirSync(cache)
    .filter((n) => n.startsWith('kernel-'))
    .map((n) => join(cache, n))
    // build.json is written last by the guest kernel build: its presence marks a complete entry.
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'build.json')))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return dirs.length ? describe(dirs[0], join(dirs[0], 'bzImage')) : undefined;
}

function describe(dir: string, bzImage: string): GuestKernel | undefined {
  const vmlinux = join(dir, 'vmlinux');
  const k: GuestKernel = {
    dir,
    bzImage: existsSync(bzImage) ? bzImage : undefined,
    vmlinux: existsSync(vmlinux) ? vmlinux : undefined,
  };
  return k.bzImage || k.vmlinux ? k : undefined;
}

/**
 * A distribution bzImage to test against, never committed: env HYPE_TEST_DISTRO_KERNEL, else a Debian
 * kernel extracted under /tmp/debkernel (`apt-get download linux-image-6.1*-amd64-unsigned` and
 * `dpkg-deb -x`), else the host's /boot/vmlinuz-*.
 */
export function findDistroKernel(): string | undefined {
  const env = process.env.HYPE_TEST_DISTRO_KERNEL;
  if (env) return existsSync(env) ? env : undefined;
  // The Debian kernel package the nested rig (and the stock-kernel guest test) keeps in the cache.
  const rigCache = join(hypeCache(), 'kvm-in-qemu');
  const rigKernels = existsSync(rigCache) ? readdirSync(rigCache).filter((n) => n.startsWith('linux-image-')).map((n) => join(rigCache, n, 'boot')) : [];
  for (const dir of [...rigKernels, '/tmp/debkernel/x/boot', '/boot']) {
    if (!existsSync(dir)) continue;
    const found = readdirSync(dir).filter((n) => n.startsWith('vmlinuz-')).sort();
    if (found.length) return join(dir, found[found.length - 1]);
  }
  return undefined;
}
