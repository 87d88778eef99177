/**
 * Slow (about 30-60 s): every public package packed with `pnpm pack` (what the release publishes), checked,
 * and installed from the tarballs into empty projects the way a user installs them, offline: with npm
 * (dependency install scripts allowed for @hype/kvm-sys only, and no compiler on PATH) and with pnpm. Then,
 * in the installed project: every entry point imported as ESM and required as CJS, a consumer type-checked
 * under `nodenext` and `node10`, the addon loaded from the shipped prebuild, `hype --version` and `--help`
 * from the installed bin, the default initrd built from the installed @hype/guest (whose rootfs lost
 * its executable bits in the tarball) with /init at 0755, and (npm; with /dev/kvm or the nested rig) the
 * installed `hype run -- uname -r` booting the default guest (its kernel cached by `pnpm test`).
 *
 * The third-party dependencies (commander, node-gyp-build, node-addon-api) are packed from the workspace's
 * node_modules, so nothing is fetched from a registry. HYPE_PACK_DIR=<dir> checks the tarballs
 * scripts/release.mjs wrote there instead of packing. Without a prebuild in the tree (`pnpm build` compiles
 * build/Release only), or with one older than build/Release, @hype/kvm-sys is packed from a staged copy
 * holding the built addon as its prebuild, as the release would ship it; without either, the native checks
 * are skipped and said so.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packInstalled, packPackage, prebuildPaths, publicPackages, readTarball, REPO_ROOT, tarballProblems, thirdPartyDependencies, type WorkspacePackage } from '../lib/pack.mjs';

type Pkg = WorkspacePackage;

const SLOW = { timeout: 180_000 };
const PACK_DIR = process.env.HYPE_PACK_DIR;
const packages: Pkg[] = publicPackages();
const cli = packages.find((p) => p.name === '@hype/cli')!;
const scratch = mkdtempSync(join(tmpdir(), 'hype-pack-install-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Every import specifier a user can write: each package and each subpath of its exports. */
const ENTRY_POINTS = packages.flatMap((p) =>
  Object.keys((p.manifest.exports as Record<string, unknown>) ?? { '.': '' })
    .filter((subpath) => subpath !== './package.json')
    .map((subpath) => (subpath === '.' ? p.name : `${p.name}/${subpath.slice(2)}`)),
);

/** The environment without what `pnpm test` adds (npm_config_*, pnpm's own variables). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_|PNPM_|pnpm_)/i.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 120_000 });
}

function ok(result: SpawnSyncReturns<string>, what: string): string {
  if (result.error) throw new Error(`${what}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${what} failed (exit ${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** A copy of @hype/kvm-sys as the release packs it, with the locally built addon as the prebuild. */
function stageKvmSys(pkg: Pkg): string | undefined {
  const built = join(pkg.dir, 'build', 'Release', 'kvm_sys.node');
  if (!existsSync(built)) return undefined;
  const stage = join(scratch, 'stage', 'kvm-sys');
  mkdirSync(join(stage, 'prebuilds', 'linux-x64'), { recursive: true });
  for (const file of ['package.json', 'README.md', 'LICENSE', 'binding.gyp']) copyFileSync(join(pkg.dir, file), join(stage, file));
  for (const dir of ['dist', 'native', 'scripts']) cpSync(join(pkg.dir, dir), join(stage, dir), { recursive: true });
  copyFileSync(built, join(stage, 'prebuilds', 'linux-x64', '@hype+kvm-sys.glibc.node'));
  return stage;
}

const tarballs = new Map<string, string>();
let thirdParty: string[] = [];
let hasPrebuild = false;

// `pnpm test` builds first; a unit run without a build skips this file (and says so), except in CI.
const unbuilt = PACK_DIR ? [] : packages.filter((p) => !existsSync(join(p.dir, 'dist'))).map((p) => p.name);
const skipUnbuilt = unbuilt.length > 0 && !process.env.CI;
if (skipUnbuilt) console.warn(`[hype] not built: ${unbuilt.join(', ')}; skipping scripts/test/pack-install.test.ts (pnpm build first)`);

function packAll() {
  if (unbuilt.length > 0) throw new Error(`not built: ${unbuilt.join(', ')}; run \`pnpm build\` first`);
  const out = join(scratch, 'tarballs');
  mkdirSync(out);
  if (PACK_DIR) {
    for (const file of readdirSync(PACK_DIR).filter((f) => f.endsWith('.tgz'))) {
      const manifest = readTarball(join(PACK_DIR, file)).find((e) => e.path === 'package.json');
      if (manifest) tarballs.set(JSON.parse(manifest.data.toString('utf8')).name, join(PACK_DIR, file));
    }
  } else {
    for (const pkg of packages) {
      // The addon: the prebuild in the tree, unless build/Release holds a newer binary (native/ was edited
      // and rebuilt since) or there is none; then a staged copy with the built binary as the prebuild.
      const onDisk = prebuildPaths(existsSync(join(pkg.dir, 'prebuilds')) ? readdirSync(join(pkg.dir, 'prebuilds'), { recursive: true }).map((f) => `prebuilds/${f}`) : []);
      const built = join(pkg.dir, 'build', 'Release', 'kvm_sys.node');
      const newerBuild = existsSync(built) && onDisk.every((p) => statSync(join(pkg.dir, p)).mtimeMs < statSync(built).mtimeMs);
      const staged = existsSync(join(pkg.dir, 'binding.gyp')) && (onDisk.length === 0 || newerBuild) ? stageKvmSys(pkg) : undefined;
      tarballs.set(pkg.name, packPackage(staged ?? pkg.dir, out));
    }
  }
  const kvmSys = tarballs.get('@hype/kvm-sys');
  hasPrebuild = kvmSys !== undefined && prebuildPaths(readTarball(kvmSys).map((e) => e.path)).length > 0;
  if (!hasPrebuild) console.warn('[hype] no prebuilt addon to pack (pnpm build first): installing with scripts off, skipping the native checks');
  const deps = join(scratch, 'third-party');
  mkdirSync(deps);
  thirdParty = packInstalled(
    thirdPartyDependencies(packages).map((d) => d.dir),
    deps,
  );
}

/** package.json dependencies for every tarball, copied into `project/tarballs/` (paths relative to it). */
function projectWithTarballs(project: string): Record<string, string> {
  mkdirSync(join(project, 'tarballs'), { recursive: true });
  const deps: Record<string, string> = {};
  for (const [name, tarball] of tarballs) {
    copyFileSync(tarball, join(project, 'tarballs', basename(tarball)));
    deps[name] = `file:tarballs/${basename(tarball)}`;
  }
  for (const tarball of thirdParty) {
    copyFileSync(tarball, join(project, 'tarballs', basename(tarball)));
    const manifest = readTarball(tarball).find((e) => e.path === 'package.json')!;
    deps[JSON.parse(manifest.data.toString('utf8')).name] = `file:tarballs/${basename(tarball)}`;
  }
  return deps;
}

/** A PATH holding node and sh only: no cc, c++, make or python3, so nothing can be compiled. */
function compilerFreePath(): string {
  const bin = join(scratch, 'bin-no-compiler');
  if (!existsSync(bin)) {
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
  }
  return bin;
}

/** npm's own script (npm-cli.js), so it runs with the compiler-free PATH. */
function npmCli(): string {
  return realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
}

const IMPORT_CHECK = `
const names = ${JSON.stringify(ENTRY_POINTS)};
const out = {};
for (const name of names) out[name] = Object.keys(await import(name)).length;
console.log(JSON.stringify(out));
`;
const REQUIRE_CHECK = `
const names = ${JSON.stringify(ENTRY_POINTS)};
const out = {};
for (const name of names) out[name] = Object.keys(require(name)).length;
console.log(JSON.stringify(out));
`;
const NATIVE_CHECK = `
const { addon } = require('@hype/kvm-sys');
const dir = require('node:path').dirname(require.resolve('@hype/kvm-sys/package.json'));
console.log(JSON.stringify({ KVM_RUN: addon().ioctls().KVM_RUN, path: require('node-gyp-build').path(dir), built: require('node:fs').existsSync(dir + '/build') }));
`;
const INITRD_CHECK = `
const { buildInitrd, decodeNewc, guestPath } = require('@hype/guest');
const members = new Map(decodeNewc(buildInitrd()).map((m) => [m.name, m.header.mode & 0o7777]));
const onDisk = require('node:fs').statSync(guestPath('rootfs', 'init')).mode & 0o7777;
console.log(JSON.stringify({ init: members.get('init'), poweroff: members.get('sbin/poweroff'), reboot: members.get('sbin/reboot'), runTests: members.get('usr/lib/hype/run-tests'), profile: members.get('etc/profile'), onDisk }));
`;

/** Imports every entry point as ESM and as CJS in `project`; each must export something. */
function checkImports(project: string) {
  writeFileSync(join(project, 'check-esm.mjs'), IMPORT_CHECK);
  writeFileSync(join(project, 'check-cjs.cjs'), REQUIRE_CHECK);
  for (const file of ['check-esm.mjs', 'check-cjs.cjs']) {
    const counts = JSON.parse(ok(run(process.execPath, [file], project), `node ${file}`)) as Record<string, number>;
    expect(Object.keys(counts).sort()).toEqual([...ENTRY_POINTS].sort());
    for (const [name, count] of Object.entries(counts)) expect(count, `${file}: ${name}`).toBeGreaterThan(0);
  }
}

function checkBin(project: string) {
  const hype = join(project, 'node_modules', '.bin', 'hype');
  expect(ok(run(hype, ['--version'], project), 'hype --version')).toBe(`${cli.version}\n`);
  expect(ok(run(hype, ['--help'], project), 'hype --help')).toMatch(/^Usage: hype /m);
}

function checkNative(project: string) {
  const native = JSON.parse(ok(run(process.execPath, ['-e', NATIVE_CHECK], project), 'loading the addon'));
  expect(native.KVM_RUN).toBe(0xae80);
  expect(native.path).toMatch(/node_modules\/@hype\/kvm-sys\/prebuilds\/linux-x64\/@hype\+kvm-sys(\.glibc)?\.node$/);
  expect(native.built).toBe(false); // nothing was compiled
}

describe.skipIf(skipUnbuilt)('pack and install (slow: packs every package and installs the tarballs offline)', () => {
  beforeAll(packAll, SLOW.timeout);

  it('packs every public package with dist/, types, README, LICENSE, executable bins and the prebuild', () => {
    expect([...tarballs.keys()].sort()).toEqual(packages.map((p) => p.name).sort());
    for (const pkg of packages) {
      const problems = tarballProblems(tarballs.get(pkg.name)!, pkg, { allowMissingPrebuild: !PACK_DIR && !hasPrebuild });
      expect(problems, pkg.name).toEqual([]);
    }
  });

  describe('installed with npm', () => {
    const project = join(scratch, 'npm-project');
    let installLog = '';

    beforeAll(() => {
      mkdirSync(project);
      const dependencies = projectWithTarballs(project);
      // npm runs no dependency install scripts unless allowed (allowScripts); allow ours, as the README says.
      const manifest = { name: 'scratch', version: '0.0.0', private: true, dependencies, allowScripts: { '@hype/kvm-sys': true } };
      writeFileSync(join(project, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      const args = [npmCli(), 'install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'];
      if (!hasPrebuild) args.push('--ignore-scripts');
      const env = cleanEnv({ PATH: compilerFreePath(), npm_config_cache: join(scratch, 'npm-cache'), npm_config_update_notifier: 'false' });
      const result = run(process.execPath, args, project, env);
      installLog = ok(result, 'npm install of the tarballs (no compiler on PATH)') + result.stderr;
    }, SLOW.timeout);

    it('imports every entry point as ESM and as CJS', () => checkImports(project), SLOW.timeout);

    it('runs the addon install step without a compiler, and loads the prebuild', ({ skip }) => {
      if (!hasPrebuild) skip();
      expect(installLog).toContain('> @hype/kvm-sys@');
      checkNative(project);
    });

    it('runs hype --version and hype --help from the installed bin', () => checkBin(project), SLOW.timeout);

    it('builds the default initrd from the installed @hype/guest with /init at 0755', ({ skip }) => {
      if (!existsSync('/bin/busybox')) skip();
      const modes = JSON.parse(ok(run(process.execPath, ['-e', INITRD_CHECK], project), 'building the initrd'));
      expect(modes).toMatchObject({ init: 0o755, poweroff: 0o755, reboot: 0o755, runTests: 0o755, profile: 0o644 });
    }, SLOW.timeout);

    it('boots the default guest with the installed hype and runs a command in it (/dev/kvm, else the nested rig)', ({ skip }) => {
      const canBoot = existsSync('/dev/kvm') || spawnSync('qemu-system-x86_64', ['--version']).status === 0;
      if (!hasPrebuild || !canBoot || !existsSync('/bin/busybox')) skip();
      const hype = join(project, 'node_modules', '.bin', 'hype');
      const result = spawnSync(hype, ['run', '--', 'uname', '-r'], { cwd: project, env: cleanEnv(), encoding: 'utf8', timeout: 900_000 });
      expect(result.stdout, `exit ${result.status}\n${result.stderr}`).toMatch(/^6\.1\.\d+\n$/);
      expect(result.status).toBe(0);
    }, 960_000);

    it('type-checks a consumer under moduleResolution nodenext (ESM and CJS) and node10', () => {
      const imports = packages
        .flatMap((p) => ENTRY_POINTS.filter((e) => e === p.name || e.startsWith(`${p.name}/`)))
        .map((name, i) => `import * as m${i} from '${name}';`);
      const body = `${imports.join('\n')}\nexport const modules = [${imports.map((_, i) => `m${i}`).join(', ')}];\n` +
        "import { ArrayGuestMemory } from '@hype/guest-memory';\nexport const view: Uint8Array | undefined = new ArrayGuestMemory(new Uint8Array(4096)).view(0, 16);\n";
      for (const file of ['consumer.mts', 'consumer.cts', 'consumer.ts']) writeFileSync(join(project, file), body);
      const tsc = join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
      const common = ['--noEmit', '--strict', '--target', 'es2022', '--types', 'node', '--typeRoots', join(REPO_ROOT, 'node_modules', '@types')];
      ok(run(tsc, [...common, '--module', 'nodenext', '--moduleResolution', 'nodenext', 'consumer.mts', 'consumer.cts'], project), 'tsc (nodenext)');
      // The declaration files themselves were checked above; here only the resolution (typesVersions) matters.
      ok(run(tsc, [...common, '--skipLibCheck', '--module', 'commonjs', '--moduleResolution', 'node10', 'consumer.ts'], project), 'tsc (node10)');
    }, SLOW.timeout);
  });

  describe.skipIf(spawnSync('pnpm', ['--version']).status !== 0)('installed with pnpm', () => {
    const project = join(scratch, 'pnpm-project');

    beforeAll(() => {
      mkdirSync(project);
      const dependencies = projectWithTarballs(project);
      writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'scratch', version: '0.0.0', private: true, dependencies }, null, 2)}\n`);
      // The @hype packages depend on each other by version: point those at the tarballs, and allow the
      // addon's install step (allowBuilds, what `pnpm approve-builds` writes; a tarball is keyed by its spec).
      const kvmSys = dependencies['@hype/kvm-sys'];
      const yaml = [
        'overrides:',
        ...Object.entries(dependencies).map(([name, spec]) => `  '${name}': '${spec}'`),
        'allowBuilds:',
        `  '@hype/kvm-sys': ${hasPrebuild}`,
        `  '@hype/kvm-sys@${kvmSys}': ${hasPrebuild}`,
        '',
      ].join('\n');
      writeFileSync(join(project, 'pnpm-workspace.yaml'), yaml);
      const pnpmDir = dirname(execFileSync('sh', ['-c', 'command -v pnpm'], { encoding: 'utf8' }).trim());
      const env = cleanEnv({ PATH: `${compilerFreePath()}:${pnpmDir}` });
      ok(run('pnpm', ['install', '--offline', '--no-frozen-lockfile', '--store-dir', join(scratch, 'pnpm-store')], project, env), 'pnpm install of the tarballs');
    }, SLOW.timeout);

    it('imports every entry point and runs hype', () => {
      checkImports(project);
      checkBin(project);
    }, SLOW.timeout);

    it('loads the addon from the prebuild (its install step approved, no compiler on PATH)', ({ skip }) => {
      if (!hasPrebuild) skip();
      checkNative(project);
    });
  });
});
