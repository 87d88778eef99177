/**
 * Which Linux source the kernel build uses (no kernel is built): HYPE_LINUX_SOURCE, else the tarball of the
 * package the `linux-source` metapackage depends on, else the newest linux-source-* tarball, compared by
 * version number. dpkg is a fake here.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareLinuxVersions, findLinuxSource, isTestedLinuxVersion, findLinuxSourceTarballs, linuxSourceVersion, linuxVersionFromMakefile, linuxVersionFromPath, linuxVersionMatches, metapackageLinuxSource, type DpkgQuery } from '@hype/guest';

const scratch = mkdtempSync(join(tmpdir(), 'hype-linux-source-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function srcDir(name: string, files: string[]): string {
  const dir = join(scratch, name);
  for (const file of files) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), '');
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** dpkg-query as on a host where the `linux-source` metapackage depends on `dependsOn` (or is absent). */
function fakeDpkg(dir: string, dependsOn?: string): DpkgQuery {
  return (args) => {
    if (dependsOn === undefined) return undefined;
    if (args.join(' ') === '-W -f=${Status} linux-source') return 'install ok installed';
    if (args.join(' ') === '-W -f=${Depends} linux-source') return `${dependsOn} (= 1.0-1)`;
    if (args[0] === '-L' && args[1] === dependsOn) return `/.\n/usr\n${join(dir, `${dependsOn}.tar.xz`)}\n/usr/share/doc/${dependsOn}\n`;
    return undefined;
  };
}

const noDpkg: DpkgQuery = () => undefined;

describe('compareLinuxVersions', () => {
  it('compares numerically, component by component', () => {
    const sorted = ['6.12', '6.1', '5.10', '6.9', '6.1.0', '6.8.0'].sort(compareLinuxVersions);
    expect(sorted).toEqual(['5.10', '6.1', '6.1.0', '6.8.0', '6.9', '6.12']);
  });
});

describe('findLinuxSourceTarballs', () => {
  it('finds Debian tarballs in the directory and Ubuntu ones one level down, oldest first', () => {
    const dir = srcDir('layouts', ['linux-source-6.12.tar.xz', 'linux-source-6.1.tar.xz', 'linux-source-6.8.0/linux-source-6.8.0.tar.bz2', 'linux-headers-6.1/x', 'linux-source-6.9.patch', 'other.tar.xz']);
    expect(findLinuxSourceTarballs(dir).map((t) => [t.version, t.path.slice(dir.length + 1)])).toEqual([
      ['6.1', 'linux-source-6.1.tar.xz'],
      ['6.8.0', 'linux-source-6.8.0/linux-source-6.8.0.tar.bz2'],
      ['6.12', 'linux-source-6.12.tar.xz'],
    ]);
    expect(findLinuxSourceTarballs(join(scratch, 'does-not-exist'))).toEqual([]);
  });
});

describe('findLinuxSource', () => {
  const dir = srcDir('both', ['linux-source-6.1.tar.xz', 'linux-source-6.12.tar.xz']);

  it('takes the version the linux-source package installed', () => {
    const choice = findLinuxSource({ env: {}, dir, query: fakeDpkg(dir, 'linux-source-6.1') });
    expect(choice).toEqual({ path: join(dir, 'linux-source-6.1.tar.xz'), version: '6.1', reason: 'installed by the linux-source package' });
    expect(findLinuxSource({ env: {}, dir, query: fakeDpkg(dir, 'linux-source-6.12') }).version).toBe('6.12');
  });

  it('takes the newest by version without the metapackage (6.12 over 6.1), and says so', () => {
    const choice = findLinuxSource({ env: {}, dir, query: noDpkg });
    expect(choice).toEqual({ path: join(dir, 'linux-source-6.12.tar.xz'), version: '6.12', reason: `the newest of 2 in ${dir} (6.1, 6.12)` });
    const one = srcDir('one', ['linux-source-6.1.tar.xz']);
    expect(findLinuxSource({ env: {}, dir: one, query: noDpkg }).reason).toBe(`the only linux-source tarball in ${one}`);
  });

  it("falls back to the newest when the metapackage's tarball is gone", () => {
    expect(metapackageLinuxSource(fakeDpkg(dir, 'linux-source-6.6'))).toBeUndefined();
    expect(findLinuxSource({ env: {}, dir, query: fakeDpkg(dir, 'linux-source-6.6') }).version).toBe('6.12');
  });

  it('lets HYPE_LINUX_SOURCE override everything', () => {
    const choice = findLinuxSource({ env: { HYPE_LINUX_SOURCE: '/opt/linux-6.12.3.tar.xz' }, dir, query: fakeDpkg(dir, 'linux-source-6.1') });
    expect(choice).toEqual({ path: '/opt/linux-6.12.3.tar.xz', version: '6.12.3', reason: 'HYPE_LINUX_SOURCE' });
  });

  it('names the apt command when there is no source at all', () => {
    expect(() => findLinuxSource({ env: {}, dir: srcDir('empty', []), query: noDpkg })).toThrow(/kernel source not found: no linux-source-\*\.tar\.xz in .*empty: apt-get install linux-source /);
  });

  it('counts 6.1 and 6.12 and their point releases as tested, not other versions sharing a prefix', () => {
    expect(['6.1', '6.1.119', '6.12', '6.12.118', '6.10', '6.121', '6.6', 'unknown'].map(isTestedLinuxVersion)).toEqual([
      true, true, true, true, false, false, false, false,
    ]);
  });

  it("reads the version from a tree's Makefile and matches it against the name's by major and minor", () => {
    expect(linuxVersionFromMakefile('# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n')).toBe('6.12.118');
    expect(linuxVersionFromMakefile('VERSION = 6\nPATCHLEVEL = 1\n')).toBe('6.1');
    expect(linuxVersionFromMakefile('all:\n\techo\n')).toBe('unknown');
    expect(linuxVersionMatches('6.12', '6.12.118')).toBe(true);
    expect(linuxVersionMatches('6.8.0', '6.8.12')).toBe(true); // Ubuntu's linux-source-6.8.0
    expect(linuxVersionMatches('6.1', '6.12.118')).toBe(false);
    expect(linuxVersionMatches('6.1', 'unknown')).toBe(false);
    expect(linuxVersionMatches('unknown', '6.1.192')).toBe(false);
  });

  it('reads versions from tarball names', () => {
    expect(linuxVersionFromPath('/usr/src/linux-source-6.1.tar.xz')).toBe('6.1');
    expect(linuxVersionFromPath('/x/linux-6.12.3.tar.gz')).toBe('6.12.3');
    expect(linuxVersionFromPath('/x/kernel.tar.xz')).toBe('unknown');
  });
});

describe('linuxSourceVersion', () => {
  it("asks dpkg for linux-source-<v>'s file list and version, never searches every package (-S)", () => {
    const asked: string[][] = [];
    const query: DpkgQuery = (args) => {
      asked.push(args);
      if (args[0] === '-L') return args[1] === 'linux-source-6.1' ? '/usr/src\n/usr/src/linux-source-6.1.tar.xz\n' : undefined;
      if (args[0] === '-W') return '6.1.192-3';
      return undefined;
    };
    expect(linuxSourceVersion('/usr/src/linux-source-6.1.tar.xz', query)).toBe('linux-source-6.1=6.1.192-3');
    expect(asked.map((a) => a[0])).toEqual(['-L', '-W']);
  });

  it('fingerprints a tarball no package owns', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hype-src-'));
    try {
      const path = join(dir, 'linux-6.12.3.tar.xz');
      writeFileSync(path, 'x');
      expect(linuxSourceVersion(path, () => undefined)).toMatch(/^file:1:\d+$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
