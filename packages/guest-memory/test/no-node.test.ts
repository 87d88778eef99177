// @hype/guest-memory must run anywhere a Uint8Array does (other emulators, browsers) and be importable
// by every hype package, the loader included: no node:* or builtin imports, no Node globals, and no
// dependencies.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from '../../../scripts/test/node-free.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(pkgDir, 'src');

describe('@hype/guest-memory stays Node-free and dependency-free', () => {
  it('src/index.ts reaches every src module, and none needs Node or another package', () => {
    const report = nodeFreeReport([join(srcDir, 'index.ts')]);
    expect(report.files).toEqual(tsSources(srcDir));
    expect(report.problems).toEqual([]);
  });

  it('package.json declares no dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
      expect(Object.keys((pkg[field] as object | undefined) ?? {}), field).toEqual([]);
    }
  });
});
