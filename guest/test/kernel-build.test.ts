/**
 * The kernel build driver, run end to end against a fake "linux source" tarball whose Makefile mimics
 * the kernel's targets in milliseconds: extraction, tinyconfig + fragment merge + olddefconfig, the
 * verification of the fragment, condensed progress, the atomic cache entry, reuse, and the lock.
 * (The real build is exercised by guest/test/qemu-boot.test.ts through ensureKernel.)
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildKernel, ensureKernel, findCachedKernel, type KernelBuildProgress } from '@hype/guest';

const scratch = mkdtempSync(join(tmpdir(), 'hype-kbuild-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const MAKEFILE = `
VERSION = 6
PATCHLEVEL = 12
SUBLEVEL = 3
tinyconfig:
\tprintf 'CONFIG_BASE=y\\n# CONFIG_A is not set\\nCONFIG_N=4\\n' > .config
olddefconfig:
\tsed -i '/CONFIG_DROPPED/d' .config
vmlinux:
\t@for i in 1 2 3 4 5 6 7; do echo "  CC      obj$$i.o"; done
\t@echo "  AS      head.o"
\t@echo "  LD      vmlinux"
\tcp .config vmlinux
bzImage: vmlinux
\tmkdir -p arch/x86/boot
\tprintf 'bz:' > arch/x86/boot/bzImage
\tcat vmlinux >> arch/x86/boot/bzImage
kernelrelease:
\t@echo 6.1.0-fake
`;

/** Replaces each fragment option in .config, as scripts/kconfig/merge_config.sh -m does. */
const MERGE_CONFIG = `#!/bin/sh
set -e
[ "$1" = -m ] || exit 2
config=$2
fragment=$3
grep -oE 'CONFIG_[A-Za-z0-9_]+' "$fragment" | while read -r option; do
	sed -i "/\\b$option[= ]/d" "$config"
done
grep -E '^(CONFIG_|# CONFIG_)' "$fragment" >> "$config"
`;

function fakeSource(): string {
  const root = join(scratch, 'src');
  const tree = join(root, 'linux-fake');
  mkdirSync(join(tree, 'scripts/kconfig'), { recursive: true });
  writeFileSync(join(tree, 'Makefile'), MAKEFILE);
  writeFileSync(join(tree, 'scripts/kconfig/merge_config.sh'), MERGE_CONFIG);
  chmodSync(join(tree, 'scripts/kconfig/merge_config.sh'), 0o755);
  const tarball = join(root, 'linux-fake.tar.xz');
  execFileSync('tar', ['-cJf', tarball, '-C', root, 'linux-fake']);
  return tarball;
}

const source = fakeSource();

function fragment(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

describe('buildKernel (against a fake source tree)', () => {
  const cacheDir = join(scratch, 'cache');
  const fragmentPath = fragment('good.config', '# ours\nCONFIG_A=y\nCONFIG_N=8\n# CONFIG_BASE is not set\n');

  it('builds, verifies, stores bzImage/vmlinux/config atomically and reports condensed progress', async () => {
    const events: KernelBuildProgress[] = [];
    const kernel = await buildKernel({ source, fragmentPath, cacheDir, progressEvery: 3, onProgress: (e) => events.push(e) });
    expect(kernel.cached).toBe(false);
    expect(kernel.dir).toBe(join(cacheDir, `kernel-${kernel.key}`));
    const config = readFileSync(kernel.config, 'utf8');
    expect(config).toContain('CONFIG_A=y\n');
    expect(config).toContain('CONFIG_N=8\n');
    expect(config).not.toContain('CONFIG_N=4');
    expect(readFileSync(kernel.vmlinux, 'utf8')).toBe(config);
    expect(readFileSync(kernel.bzImage, 'utf8')).toBe(`bz:${config}`);
    const info = JSON.parse(readFileSync(join(kernel.dir, 'build.json'), 'utf8'));
    expect(info).toMatchObject({ key: kernel.key, kernelRelease: '6.1.0-fake', fragment: { CONFIG_A: 'y', CONFIG_N: '8', CONFIG_BASE: 'n' } });
    expect(info.sourceVersion).toMatch(/^file:\d+:\d+$/);

    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases).toEqual(['extract', 'configure', 'verify', 'compile', 'store', 'done']);
    // The progress line says which source it used, and why.
    expect(events[0].message).toBe(`extracting ${source} (${info.sourceVersion}; the source option) into ${join(cacheDir, 'tmp', `kernel-${kernel.key}-${process.pid}`, 'linux')}`);
    const counts = events.filter((e) => e.phase === 'compile' && /objects compiled/.test(e.message)).map((e) => e.compiled);
    expect(counts).toEqual([3, 6]); // 8 objects (7 CC + 1 AS), one event every 3
    expect(events.some((e) => /linking vmlinux after 8 objects/.test(e.message))).toBe(true);
    // The build tree is gone; only the entry is left.
    expect(readdirSync(cacheDir).sort()).toEqual([`kernel-${kernel.key}`]);
  });

  it('reuses the cache entry, also when only comments of the fragment changed', async () => {
    const events: KernelBuildProgress[] = [];
    const again = await ensureKernel({ source, fragmentPath, cacheDir, onProgress: (e) => events.push(e) });
    expect(again.cached).toBe(true);
    expect(events.map((e) => e.phase)).toEqual(['cached']);
    const reworded = fragment('reworded.config', '# CONFIG_BASE is not set\nCONFIG_N=8\n# a different comment\nCONFIG_A=y\n');
    expect((await ensureKernel({ source, fragmentPath: reworded, cacheDir })).key).toBe(again.key);
    expect(findCachedKernel({ source, fragmentPath, cacheDir })?.key).toBe(again.key);
  });

  it('fails loudly, naming the option, when the fragment does not survive olddefconfig', async () => {
    const bad = fragment('bad.config', 'CONFIG_A=y\nCONFIG_DROPPED=y\n');
    const badCache = join(scratch, 'cache-bad');
    await expect(buildKernel({ source, fragmentPath: bad, cacheDir: badCache })).rejects.toThrow(
      /kernel build failed: kernel config: 1 option\(s\)[^]*CONFIG_DROPPED: wanted =y, got absent[^]*full log: .*build\.log/,
    );
    expect(readdirSync(badCache).filter((e) => e.startsWith('kernel-'))).toEqual([]);
    expect(findCachedKernel({ source, fragmentPath: bad, cacheDir: badCache })).toBeUndefined();
  });

  it('lets concurrent callers share one build through the lock', async () => {
    const sharedCache = join(scratch, 'cache-shared');
    const extracts: string[] = [];
    const waits: string[] = [];
    let startSecond: () => void = () => {};
    const secondMayStart = new Promise<void>((resolve) => {
      startSecond = resolve;
    });
    const onProgress = (e: KernelBuildProgress) => {
      if (e.phase === 'extract') {
        extracts.push(e.message);
        startSecond(); // the first build holds the lock now
      }
      if (e.phase === 'wait') waits.push(e.message);
    };
    // Same process, so the lock holder is alive: the second caller waits, then finds the entry.
    const [a, b] = await Promise.all([
      buildKernel({ source, fragmentPath, cacheDir: sharedCache, onProgress }),
      secondMayStart.then(() => buildKernel({ source, fragmentPath, cacheDir: sharedCache, onProgress })),
    ]);
    expect(extracts).toHaveLength(1);
    expect(waits).toHaveLength(1);
    expect([a.cached, b.cached]).toEqual([false, true]);
    expect(existsSync(join(sharedCache, `kernel-${a.key}.lock`))).toBe(false);
  });

  it('removes a stale lock left by a dead process', async () => {
    const staleCache = join(scratch, 'cache-stale');
    const probe = await buildKernel({ source, fragmentPath, cacheDir: join(scratch, 'cache-probe') });
    mkdirSync(staleCache, { recursive: true });
    writeFileSync(join(staleCache, `kernel-${probe.key}.lock`), '999999999\n');
    const kernel = await buildKernel({ source, fragmentPath, cacheDir: staleCache });
    expect(kernel.cached).toBe(false);
  });

  it('says when the source is a Linux version the fragment is untested on', async () => {
    const other = join(scratch, 'src', 'linux-source-6.6.tar.xz');
    copyFileSync(source, other);
    const events: KernelBuildProgress[] = [];
    await buildKernel({ source: other, fragmentPath, cacheDir: join(scratch, 'cache-6.6'), onProgress: (e) => events.push(e) });
    const extract = events.filter((e) => e.phase === 'extract').map((e) => e.message);
    expect(extract[0]).toMatch(/^extracting .*linux-source-6\.6\.tar\.xz \(file:\d+:\d+; the source option\)/);
    expect(extract[1]).toMatch(/^Linux 6\.6 is untested with .*good\.config \(tested: 6\.1, 6\.12\); every option is verified after olddefconfig$/);
  });

  describe('a fragment with Linux-version blocks', () => {
    const versioned = fragment(
      'versioned.config',
      '# CONFIG_BASE is not set\n#if linux < 6.5\nCONFIG_A=y\nCONFIG_N=8\n#else\n# CONFIG_A is not set\nCONFIG_N=16\n#endif\n',
    );
    const named = (version: string) => {
      const path = join(scratch, 'src', `linux-source-${version}.tar.xz`);
      if (!existsSync(path)) copyFileSync(source, path);
      return path;
    };

    it('is resolved for the version in the tarball name: merged, verified, keyed and recorded as resolved', async () => {
      const events: KernelBuildProgress[] = [];
      const cache = join(scratch, 'cache-versioned');
      const kernel = await buildKernel({ source: named('6.12'), fragmentPath: versioned, cacheDir: cache, onProgress: (e) => events.push(e) });
      const config = readFileSync(kernel.config, 'utf8');
      expect(config).toContain('CONFIG_N=16\n');
      expect(config).toContain('# CONFIG_A is not set\n');
      expect(config).not.toMatch(/CONFIG_N=8|#if|#else|#endif/);
      const info = JSON.parse(readFileSync(join(kernel.dir, 'build.json'), 'utf8'));
      expect(info.fragment).toEqual({ CONFIG_BASE: 'n', CONFIG_A: 'n', CONFIG_N: '16' });
      expect(events.find((e) => e.phase === 'configure')?.message).toBe(`make tinyconfig + ${versioned} (its blocks for Linux 6.12) + olddefconfig`);
      // The key is that of the resolved options: the same as a plain fragment asking for them.
      const plain = fragment('plain-6.12.config', '# CONFIG_BASE is not set\n# CONFIG_A is not set\nCONFIG_N=16\n');
      expect(findCachedKernel({ source: named('6.12'), fragmentPath: plain, cacheDir: cache })?.key).toBe(kernel.key);
    });

    it("fails before configuring when the tree's Makefile is another version than the name says", async () => {
      // The fake tree's Makefile says 6.12.3.
      await expect(buildKernel({ source: named('6.1'), fragmentPath: versioned, cacheDir: join(scratch, 'cache-misnamed') })).rejects.toThrow(
        /linux-source-6\.1\.tar\.xz is named for Linux 6\.1 but its Makefile says 6\.12\.3; the #if linux blocks of .*versioned\.config were resolved for 6\.1/,
      );
    });

    it('needs a version: a tarball whose name has none is refused at once', async () => {
      await expect(buildKernel({ source, fragmentPath: versioned, cacheDir: join(scratch, 'cache-unknown') })).rejects.toThrow(
        /versioned\.config:2: #if linux < 6\.5 needs the Linux version of the source, which is unknown/,
      );
      expect(existsSync(join(scratch, 'cache-unknown'))).toBe(false);
    });
  });

  it('names the missing source and the apt command', async () => {
    await expect(buildKernel({ source: join(scratch, 'nope.tar.xz'), fragmentPath, cacheDir })).rejects.toThrow(
      /kernel source not found at .*nope\.tar\.xz \(the source option\): apt-get install linux-source /,
    );
  });
});
