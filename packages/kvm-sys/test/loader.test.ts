// The addon is found by node-gyp-build both where `node-gyp rebuild` puts it (build/Release, a build from
// source on install) and where `prebuildify --napi` puts it (prebuilds/linux-x64). Each layout is laid
// out in a temporary package holding only that binary, and loaded in a child process.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addonLoadHint, isSourceCheckout, packageRoot, usualAddonPath } from '../src/index.js';

const require = createRequire(import.meta.url);
const nodeGypBuild = require.resolve('node-gyp-build');
const binary: string = require('node-gyp-build').path(packageRoot());
const scratch = mkdtempSync(join(tmpdir(), 'hype-kvm-sys-loader-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function loadFrom(layout: string, file: string) {
  const dir = join(scratch, layout);
  mkdirSync(join(dir, file, '..'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@hype/kvm-sys' }));
  copyFileSync(binary, join(dir, file));
  const script = `
    const load = require(${JSON.stringify(nodeGypBuild)});
    const dir = ${JSON.stringify(dir)};
    const native = load(dir);
    console.log(JSON.stringify({ path: load.path(dir), ioctl: native.ioctls().KVM_RUN }));
  `;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(child.stderr).toBe('');
  return { dir, ...JSON.parse(child.stdout) };
}

describe('node-gyp-build finds the addon', () => {
  it('in build/Release (built from source)', () => {
    const { dir, path, ioctl } = loadFrom('from-source', 'build/Release/kvm_sys.node');
    expect(path).toBe(join(dir, 'build/Release/kvm_sys.node'));
    expect(ioctl).toBe(0xae80);
  });

  it('in prebuilds/linux-x64 with the glibc tag (prebuildify --napi --tag-libc, what the release ships)', () => {
    const { dir, path, ioctl } = loadFrom('prebuilt-glibc', 'prebuilds/linux-x64/@hype+kvm-sys.glibc.node');
    expect(path).toBe(join(dir, 'prebuilds/linux-x64/@hype+kvm-sys.glibc.node'));
    expect(ioctl).toBe(0xae80);
  });

  it('in prebuilds/linux-x64 (prebuildify --napi)', () => {
    const { dir, path, ioctl } = loadFrom('prebuilt', 'prebuilds/linux-x64/@hype+kvm-sys.node');
    expect(path).toBe(join(dir, 'prebuilds/linux-x64/@hype+kvm-sys.node'));
    expect(ioctl).toBe(0xae80);
  });
});

describe('addon() finds the usual files without node-gyp-build, as node-gyp-build would', () => {
  it('build/Release, then (without a build) the glibc prebuild; anything else is left to node-gyp-build', () => {
    const source = loadFrom('usual-source', 'build/Release/kvm_sys.node');
    expect(usualAddonPath(source.dir, {})).toBe(source.path);
    expect(usualAddonPath(source.dir, { PREBUILDS_ONLY: '1' })).toBeUndefined();
    const glibc = loadFrom('usual-glibc', 'prebuilds/linux-x64/@hype+kvm-sys.glibc.node');
    expect(usualAddonPath(glibc.dir, {})).toBe(glibc.path);
    expect(usualAddonPath(glibc.dir, { LIBC: 'musl' })).toBeUndefined();
    expect(usualAddonPath(loadFrom('usual-untagged', 'prebuilds/linux-x64/@hype+kvm-sys.node').dir, {})).toBeUndefined();
    expect(usualAddonPath(loadFrom('usual-debug', 'build/Debug/kvm_sys.node').dir, {})).toBeUndefined();
    // This package as it is: what addon() loads is what node-gyp-build picks.
    expect(usualAddonPath(packageRoot())).toBe(binary);
  });

  it('packageRoot() is this package\'s directory, found by name', () => {
    expect(packageRoot()).toBe(join(import.meta.dirname, '..'));
  });
});

describe('the advice when the addon does not load', () => {
  it('names the repository commands only inside this repository', () => {
    expect(isSourceCheckout(packageRoot())).toBe(true);
    expect(addonLoadHint(packageRoot())).toMatch(/pnpm --filter @hype\/kvm-sys build/);
  });

  it('tells an installed package what to install and run, without monorepo commands', () => {
    const installed = join(scratch, 'project', 'node_modules', '@hype', 'kvm-sys');
    mkdirSync(join(installed, 'native'), { recursive: true });
    expect(isSourceCheckout(installed)).toBe(false);
    const hint = addonLoadHint(installed);
    expect(hint).not.toMatch(/--filter|repository/);
    expect(hint).toMatch(/apt-get install python3 make g\+\+/);
    expect(hint).toMatch(/npm rebuild @hype\/kvm-sys/);
    expect(hint).toMatch(/pnpm approve-builds/);
  });
});
