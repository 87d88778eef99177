import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { guestDir, guestPath, packageDir } from '../src/paths.js';

describe('guestDir', () => {
  it('is the @hype/guest package, found by its name (the CLI bundles this module elsewhere)', () => {
    const expected = dirname(dirname(fileURLToPath(import.meta.url)));
    expect(guestDir()).toBe(expected);
    expect((JSON.parse(readFileSync(join(guestDir(), 'package.json'), 'utf8')) as { name: string }).name).toBe('@hype/guest');
    expect(guestPath('kernel', 'hype.config')).toBe(join(expected, 'kernel', 'hype.config'));
  });
});

describe('packageDir', () => {
  it('finds a package where require() looks (the nearest node_modules first), symlinks resolved', () => {
    const root = realpathSync(mkdtempSync(join(tmpdir(), 'hype-package-dir-')));
    try {
      const real = join(root, 'store', 'guest');
      mkdirSync(real, { recursive: true });
      writeFileSync(join(real, 'package.json'), '{"name":"@hype/guest"}');
      mkdirSync(join(root, 'app', 'node_modules', '@hype'), { recursive: true });
      symlinkSync(real, join(root, 'app', 'node_modules', '@hype', 'guest'));
      const outer = join(root, 'node_modules', '@hype', 'guest');
      mkdirSync(outer, { recursive: true });
      writeFileSync(join(outer, 'package.json'), '{"name":"@hype/guest"}');
      expect(packageDir('@hype/guest', join(root, 'app', 'dist', 'main.cjs'))).toBe(real);
      expect(packageDir('@hype/guest', pathToFileURL(join(root, 'other', 'x.js')).href)).toBe(outer);
      expect(() => packageDir('@hype/no-such-package', join(root, 'other', 'x.js'))).toThrow(/Cannot find module/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
