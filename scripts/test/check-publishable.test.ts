/**
 * scripts/check-publishable.mjs, every public package's prepublishOnly: what it refuses (a missing or
 * stale dist/, a missing README/LICENSE or entry file, the addon without a current prebuild), on scratch
 * packages; and that every public package of the workspace passes once built.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { publishProblems } from '../check-publishable.mjs';
import { publicPackages } from '../lib/pack.mjs';

const script = fileURLToPath(new URL('../check-publishable.mjs', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'hype-publishable-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const MANIFEST = {
  name: '@hype/example',
  version: '0.0.0',
  main: './dist/index.cjs',
  types: './dist/index.d.ts',
  exports: { '.': { import: './dist/index.js', require: './dist/index.cjs' }, './package.json': './package.json' },
};

/** A package directory with these files (path -> contents). */
function pkg(name: string, files: Record<string, string>, manifest: object = MANIFEST): string {
  const dir = join(scratch, name);
  for (const [path, text] of Object.entries({ 'package.json': JSON.stringify(manifest), ...files })) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const at = (dir: string, path: string, seconds: number) => utimesSync(join(dir, path), 1e9 + seconds, 1e9 + seconds);
const complete = { 'README.md': '#', LICENSE: 'Apache', 'src/index.ts': '', 'dist/index.js': '', 'dist/index.cjs': '', 'dist/index.d.ts': '' };

describe('check-publishable', () => {
  it('passes a built package with README and LICENSE', () => {
    const dir = pkg('good', complete);
    at(dir, 'src/index.ts', 0);
    expect(publishProblems(dir)).toEqual([]);
    expect(spawnSync(process.execPath, [script, dir]).status).toBe(0);
  });

  it('refuses a package without dist/, and says to build', () => {
    const dir = pkg('unbuilt', { 'README.md': '#', LICENSE: 'Apache', 'src/index.ts': '' });
    expect(publishProblems(dir)).toEqual(['@hype/example: dist/ is missing or empty; run `pnpm build` at the repository root']);
    const cli = spawnSync(process.execPath, [script, dir], { encoding: 'utf8' });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain('check-publishable: @hype/example: dist/ is missing');
  });

  it('refuses a dist/ older than the sources, a missing entry file, README or LICENSE', () => {
    const { 'dist/index.d.ts': _types, 'README.md': _readme, LICENSE: _license, ...rest } = complete;
    const dir = pkg('stale', rest);
    for (const file of ['dist/index.js', 'dist/index.cjs']) at(dir, file, 0);
    at(dir, 'src/index.ts', 10);
    expect(publishProblems(dir)).toEqual([
      '@hype/example: dist/ is older than the sources; run `pnpm build` at the repository root',
      '@hype/example: package.json points at dist/index.d.ts, which does not exist',
      '@hype/example: no README.md',
      '@hype/example: no LICENSE',
    ]);
  });

  it('refuses the native addon without a prebuild, or with one older than native/', () => {
    const manifest = { ...MANIFEST, name: '@hype/native', gypfile: true };
    const dir = pkg('native', { ...complete, 'binding.gyp': '{}', 'native/addon.cc': '' }, manifest);
    at(dir, 'src/index.ts', 0);
    expect(publishProblems(dir)).toEqual([
      '@hype/native: no prebuilds/linux-x64/*.node; run `node scripts/release.mjs` (or `pnpm --filter @hype/native build:prebuild`)',
    ]);
  });

  it('accepts a current prebuild and refuses a stale one', () => {
    const manifest = { ...MANIFEST, name: '@hype/native', gypfile: true };
    const dir = pkg('native-prebuilt', { ...complete, 'binding.gyp': '{}', 'native/addon.cc': '', 'prebuilds/linux-x64/@hype+native.glibc.node': '' }, manifest);
    at(dir, 'src/index.ts', 0);
    for (const file of ['binding.gyp', 'native/addon.cc']) at(dir, file, 0);
    at(dir, 'prebuilds/linux-x64/@hype+native.glibc.node', 5);
    expect(publishProblems(dir)).toEqual([]);
    at(dir, 'prebuilds/linux-x64/@hype+native.glibc.node', 5);
    at(dir, 'native/addon.cc', 10);
    expect(publishProblems(dir)).toEqual(['@hype/native: a prebuild is older than native/ or binding.gyp; run `pnpm --filter @hype/native build:prebuild`']);
  });

  it("finds nothing missing in the workspace's built packages but a prebuild", () => {
    const built = publicPackages().filter((p) => existsSync(join(p.dir, 'dist')));
    const problems = built.flatMap((p) => publishProblems(p.dir)).filter((p) => !/prebuild|older than the sources/.test(p));
    expect(problems).toEqual([]);
  });
});
