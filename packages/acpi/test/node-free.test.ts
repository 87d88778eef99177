// The package must run wherever a Uint8Array does: no Node built-ins or globals, no dependencies.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from '../../../scripts/test/node-free.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(pkgDir, 'src');

describe('@hype/acpi is Node-free', () => {
  it('src/index.ts reaches every src module, and none needs Node or another package', () => {
    const report = nodeFreeReport([join(srcDir, 'index.ts')]);
    expect(report.files).toContain('index.ts');
    expect(report.files).toEqual(tsSources(srcDir));
    expect(report.problems).toEqual([]);
  });

  it('declares no dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(pkg.peerDependencies).toBeUndefined();
    expect(pkg.sideEffects).toBe(false);
  });
});
