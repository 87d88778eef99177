/**
 * Which Linux source tarball the guest kernel is built from. Debian's `linux-source` metapackage installs
 * `linux-source-<version>` with `/usr/src/linux-source-<version>.tar.xz` (6.1 on Debian 12, 6.12 on
 * Debian 13); Ubuntu's puts `/usr/src/linux-source-<version>/linux-source-<version>.tar.bz2`. The config
 * fragment (kernel/hype.config) is tested on 6.1 and 6.12; its `#if linux` blocks are resolved for the
 * version read from the tarball's name.
 */
import { execFileSync } from './child-process.js';
import { DPKG_STATUS_FILE, memoized } from './memo.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const LINUX_SOURCE_DIR = '/usr/src';

/**
 * The Linux versions kernel/hype.config is built and booted on: Debian 12's linux-source-6.1 (the default
 * there, and what CI builds) and 6.12 (Debian 13's; Debian 12 has it as linux-source-6.12 in
 * bookworm-security).
 */
export const TESTED_LINUX_VERSIONS: readonly string[] = ['6.1', '6.12'];

export const LINUX_SOURCE_HINT =
  'apt-get install linux-source bc bison flex libelf-dev libssl-dev build-essential (or run guest/setup-deps.sh), or set HYPE_LINUX_SOURCE';

export interface LinuxSourceTarball {
  path: string;
  /** From the name: `6.1` for linux-source-6.1.tar.xz, `6.8.0` for Ubuntu's linux-source-6.8.0. */
  version: string;
}

export interface LinuxSourceChoice extends LinuxSourceTarball {
  /** Why this one, for the progress line: `HYPE_LINUX_SOURCE`, the linux-source package's, the newest, ... */
  reason: string;
}

/** True for a version the fragment is tested on, or a point release of one (6.1.119 for 6.1). */
export function isTestedLinuxVersion(version: string): boolean {
  return TESTED_LINUX_VERSIONS.some((tested) => version === tested || version.startsWith(`${tested}.`));
}

const TARBALL = /^linux-source-(\d+(?:\.\d+)*)\.tar\.(?:xz|bz2|gz)$/;
const VERSION_DIR = /^linux-source-(\d+(?:\.\d+)*)$/;

/** Compares dotted version numbers numerically (6.12 > 6.9 > 6.1). */
export function compareLinuxVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** `linux-source-<version>.tar.{xz,bz2,gz}` in `dir` and in `dir/linux-source-<version>/`, oldest first. */
export function findLinuxSourceTarballs(dir = LINUX_SOURCE_DIR): LinuxSourceTarball[] {
  if (!existsSync(dir)) return [];
  const found: LinuxSourceTarball[] = [];
  for (const name of readdirSync(dir)) {
    const tarball = TARBALL.exec(name);
    if (tarball && statSync(join(dir, name)).isFile()) found.push({ path: join(dir, name), version: tarball[1] });
    if (VERSION_DIR.test(name) && statSync(join(dir, name)).isDirectory()) {
      for (const inner of readdirSync(join(dir, name))) {
        const nested = TARBALL.exec(inner);
        if (nested && statSync(join(dir, name, inner)).isFile()) found.push({ path: join(dir, name, inner), version: nested[1] });
      }
    }
  }
  return found.sort((a, b) => compareLinuxVersions(a.version, b.version) || (a.path < b.path ? -1 : 1));
}

/** The version in a source tarball's name (`linux-source-6.1.tar.xz`, `linux-6.12.3.tar.xz`), or `unknown`. */
export function linuxVersionFromPath(path: string): string {
  return /(?:^|\/)linux(?:-source)?-(\d+(?:\.\d+)*)\.tar(?:\.\w+)?$/.exec(path)?.[1] ?? 'unknown';
}

/**
 * The version a kernel tree's top-level Makefile declares (`VERSION = 6`, `PATCHLEVEL = 12`,
 * `SUBLEVEL = 118` -> `6.12.118`), or `unknown`.
 */
export function linuxVersionFromMakefile(makefile: string): string {
  const field = (name: string) => new RegExp(`^${name}\\s*=\\s*(\\d+)\\s*$`, 'm').exec(makefile)?.[1];
  const [version, patchlevel, sublevel] = [field('VERSION'), field('PATCHLEVEL'), field('SUBLEVEL')];
  if (version === undefined || patchlevel === undefined) return 'unknown';
  return sublevel === undefined ? `${version}.${patchlevel}` : `${version}.${patchlevel}.${sublevel}`;
}

/**
 * True when a tarball named for `version` (`6.12`; Ubuntu's `6.8.0`) holds the tree whose Makefile says
 * `release` (`6.12.118`; `6.8.12`): the same major and minor number.
 */
export function linuxVersionMatches(version: string, release: string): boolean {
  const series = (v: string) => v.split('.').slice(0, 2).join('.');
  return /^\d+\.\d+/.test(version) && series(version) === series(release);
}

/** Runs `dpkg-query` with these arguments; undefined when it fails or is absent. */
export type DpkgQuery = (args: string[]) => string | undefined;

export const dpkgQuery: DpkgQuery = (args) => {
  const run = () => {
    try {
      return execFileSync('dpkg-query', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return null; // JSON keeps null, not undefined
    }
  };
  // Answers change only when dpkg's database does; dpkg-query -S alone takes ~200 ms.
  return memoized(`dpkg-query ${JSON.stringify(args)}`, [DPKG_STATUS_FILE], run) ?? undefined;
};

/**
 * The tarball of the package the installed `linux-source` metapackage depends on (`linux-source-6.1` on
 * Debian 12), from dpkg's file list; undefined without dpkg, without the metapackage, or when that file
 * is gone.
 */
export function metapackageLinuxSource(query: DpkgQuery = dpkgQuery): string | undefined {
  const status = query(['-W', '-f=${Status}', 'linux-source']);
  if (status === undefined || !/\binstall ok installed\b/.test(status)) return undefined;
  const depends = query(['-W', '-f=${Depends}', 'linux-source']) ?? '';
  for (const dep of depends.split(/[,|]/)) {
    const name = dep.trim().split(/\s/)[0];
    if (!VERSION_DIR.test(name)) continue;
    const files = (query(['-L', name]) ?? '').split('\n').map((l) => l.trim());
    const tarball = files.find((f) => TARBALL.test(f.slice(f.lastIndexOf('/') + 1)) && existsSync(f));
    if (tarball) return tarball;
  }
  return undefined;
}

export interface FindLinuxSourceOptions {
  env?: NodeJS.ProcessEnv;
  /** Where to look for tarballs. Default /usr/src. */
  dir?: string;
  query?: DpkgQuery;
}

/**
 * The Linux source tarball to build from: `$HYPE_LINUX_SOURCE` if set; else the one the installed
 * `linux-source` metapackage brought; else the newest `linux-source-*` tarball under /usr/src. Throws a
 * one-line error with the apt command when there is none.
 */
export function findLinuxSource(options: FindLinuxSourceOptions = {}): LinuxSourceChoice {
  const env = options.env ?? process.env;
  const dir = options.dir ?? LINUX_SOURCE_DIR;
  const explicit = env.HYPE_LINUX_SOURCE;
  if (explicit !== undefined && explicit !== '') return { path: explicit, version: linuxVersionFromPath(explicit), reason: 'HYPE_LINUX_SOURCE' };
  const fromPackage = metapackageLinuxSource(options.query);
  if (fromPackage !== undefined) {
    return { path: fromPackage, version: linuxVersionFromPath(fromPackage), reason: 'installed by the linux-source package' };
  }
  const candidates = findLinuxSourceTarballs(dir);
  const newest = candidates.at(-1);
  if (newest === undefined) {
    throw new Error(`kernel source not found: no linux-source-*.tar.xz in ${dir}: ${LINUX_SOURCE_HINT}`);
  }
  const reason =
    candidates.length === 1
      ? `the only linux-source tarball in ${dir}`
      : `the newest of ${candidates.length} in ${dir} (${candidates.map((c) => c.version).join(', ')})`;
  return { ...newest, reason };
}
