/**
 * The nested rig (apps/cli/rig/kvm-in-qemu.sh, through scripts/kvm-in-qemu.sh) keeps its Debian kernel
 * under the same cache root as @hype/guest's hypeCacheDir(): HYPE_CACHE_DIR, else $XDG_CACHE_HOME/hype,
 * else ~/.cache/hype. The rig takes its lock in <root>/kvm-in-qemu before it checks its settings, so a bad
 * setting shows where it looked without starting anything.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hypeCacheDir } from '@hype/guest';

const script = fileURLToPath(new URL('../kvm-in-qemu.sh', import.meta.url));
const fakeQemu = fileURLToPath(new URL('./fixtures/fake-qemu.sh', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'hype-rig-cache-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the rig and hypeCacheDir agree on the cache root', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['HYPE_CACHE_DIR', { HYPE_CACHE_DIR: 'explicit', XDG_CACHE_HOME: 'xdg' }, 'explicit'],
    ['XDG_CACHE_HOME', { XDG_CACHE_HOME: 'xdg' }, 'xdg/hype'],
    ['XDG_CACHE_HOME under an empty HYPE_CACHE_DIR', { HYPE_CACHE_DIR: '', XDG_CACHE_HOME: 'xdg' }, 'xdg/hype'],
    ['~/.cache/hype', {}, 'home/.cache/hype'],
  ];
  for (const [name, vars, expected] of cases) {
    it(name, () => {
      const dir = join(scratch, name.replace(/\W+/g, '-'));
      const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home') };
      for (const [key, value] of Object.entries(vars)) env[key] = value === '' ? '' : join(dir, value);
      expect(hypeCacheDir(env)).toBe(join(dir, expected));
      const r = spawnSync('bash', [script, 'true'], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...env, KVM_IN_QEMU_QEMU: fakeQemu, KVM_IN_QEMU_STALL_S: 'soon' },
      });
      expect(r.stderr.trim()).toBe('kvm-in-qemu: KVM_IN_QEMU_STALL_S=soon: use a positive whole number');
      expect(existsSync(join(dir, expected, 'kvm-in-qemu', '.lock'))).toBe(true);
    });
  }

  it('ignores a relative XDG_CACHE_HOME, as the XDG spec says', () => {
    const dir = join(scratch, 'relative');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), XDG_CACHE_HOME: 'not/absolute' };
    expect(hypeCacheDir(env)).toBe(join(dir, 'home/.cache/hype'));
    spawnSync('bash', [script, 'true'], { cwd: scratch, env: { ...env, KVM_IN_QEMU_QEMU: fakeQemu, KVM_IN_QEMU_STALL_S: 'soon' } });
    expect(existsSync(join(dir, 'home/.cache/hype/kvm-in-qemu/.lock'))).toBe(true);
    expect(existsSync(join(scratch, 'not'))).toBe(false);
  });
});
