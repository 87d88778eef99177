// @hype/guest-memory must run anywhere a Uint8Array does (other emulators, browsers) and be importable
// by every hype package, the loader included: no node:* or builtin imports in src/, and no dependencies.
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const pkgDir = join(__dirname, '..');
const srcDir = join(pkgDir, 'src');
const builtins = new Set(builtinModules);

describe('@hype/guest-memory stays Node-free and dependency-free', () => {
  it('no src module imports node:*, a Node builtin or another package', () => {
    const offenders: string[] = [];
    for (const f of readdirSync(srcDir)) {
      if (!f.endsWith('.ts')) continue;
      const text = readFileSync(join(srcDir, f), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1];
        if (spec.startsWith('node:') || builtins.has(spec)) offenders.push(`${f}: ${spec}`);
        else if (!spec.startsWith('./')) offenders.push(`${f}: imports package ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('package.json declares no dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
      expect(Object.keys((pkg[field] as object | undefined) ?? {}), field).toEqual([]);
    }
  });
});
