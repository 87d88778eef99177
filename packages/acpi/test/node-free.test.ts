// The package must run wherever a Uint8Array does: no Node built-ins, no dependencies.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(pkgDir, 'src');
const sources = readdirSync(srcDir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ file: f, text: readFileSync(join(srcDir, f), 'utf8') }));

/** Module specifiers of static imports/exports, dynamic import() and require(). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\b(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g)) out.push(m[1]);
  for (const m of text.matchAll(/\bimport\s*['"]([^'"]+)['"]/g)) out.push(m[1]);
  for (const m of text.matchAll(/\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]);
  return out;
}

describe('@hype/acpi is Node-free', () => {
  it('finds the sources and their imports', () => {
    expect(sources.map((s) => s.file)).toContain('index.ts');
    expect(specifiers("import { a } from 'node:fs';\nexport * from './x.js';\nimport 'y';\nconst z = require('node:os');")).toEqual([
      'node:fs',
      './x.js',
      'y',
      'node:os',
    ]);
  });

  it.each(sources.map((s) => [s.file, s.text]))('%s imports only sibling modules', (_file, text) => {
    const specs = specifiers(text);
    expect(specs.filter((s) => s.startsWith('node:'))).toEqual([]);
    expect(specs.filter((s) => !s.startsWith('./'))).toEqual([]);
    const code = text.replace(/\/\*[^]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    expect(code).not.toMatch(/\b(?:process|Buffer)\s*\.|\brequire\s*\(|\bimport\.meta\b/);
  });

  it('declares no dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(pkg.peerDependencies).toBeUndefined();
    expect(pkg.sideEffects).toBe(false);
  });
});
