import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { guestDir, guestPath } from '../src/paths.js';

describe('guestDir', () => {
  it('is the @hype/guest package, found by its name (the CLI bundles this module elsewhere)', () => {
    const expected = dirname(dirname(fileURLToPath(import.meta.url)));
    expect(guestDir()).toBe(expected);
    expect((JSON.parse(readFileSync(join(guestDir(), 'package.json'), 'utf8')) as { name: string }).name).toBe('@hype/guest');
    expect(guestPath('kernel', 'hype.config')).toBe(join(expected, 'kernel', 'hype.config'));
  });
});
