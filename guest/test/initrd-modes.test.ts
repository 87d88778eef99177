/**
 * The initrd's file modes come from ROOTFS_EXECUTABLES, not from the disk: `pnpm pack` (and so every
 * installed @hype/guest) loses the executable bits of rootfs/init and the other scripts, and the kernel
 * cannot start an `/init` without one. Built here from a copy of rootfs/ with every executable bit removed.
 */
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildInitrd, decodeNewc, DEFAULT_BUSYBOX, guestPath, ROOTFS_EXECUTABLES, rootfsEntries, S_IFMT, S_IFREG } from '@hype/guest';

const scratch = mkdtempSync(join(tmpdir(), 'hype-initrd-modes-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? [full, ...walk(full)] : [full];
  });
}

/** A copy of guest/rootfs with modes as `pnpm pack` leaves them: files 0644 (and, worse, directories 0700). */
function strippedCopy(name: string): string {
  const copy = join(scratch, name);
  cpSync(guestPath('rootfs'), copy, { recursive: true });
  for (const path of walk(copy)) chmodSync(path, statSync(path).isDirectory() ? 0o700 : 0o644);
  return copy;
}

describe('rootfs modes', () => {
  it('lists exactly the rootfs files that start with #!', () => {
    const root = guestPath('rootfs');
    const scripts = walk(root)
      .filter((path) => statSync(path).isFile() && readFileSync(path).subarray(0, 2).toString() === '#!')
      .map((path) => relative(root, path).split('\\').join('/'))
      .sort();
    expect([...ROOTFS_EXECUTABLES].sort()).toEqual(scripts);
  });

  it('takes modes from the table, not from the disk', () => {
    const copy = strippedCopy('entries');
    chmodSync(join(copy, 'etc/profile'), 0o755); // executable on disk, not in the table: stays 0644
    const entries = rootfsEntries(copy);
    const mode = (path: string) => {
      const entry = entries.find((e) => e.path === path);
      return entry && 'mode' in entry ? entry.mode : undefined;
    };
    for (const path of ROOTFS_EXECUTABLES) expect(mode(path), path).toBe(0o755);
    expect(mode('etc/profile')).toBe(0o644);
    expect(mode('usr/lib/hype/functions.sh')).toBe(0o644);
    for (const entry of entries) {
      if (entry.type === 'dir') expect(entry.mode, entry.path).toBe(0o755);
      else if (entry.type === 'file') expect([0o644, 0o755]).toContain(entry.mode);
    }
  });

  it('refuses a table entry that is not in the directory', () => {
    const copy = strippedCopy('missing');
    rmSync(join(copy, 'sbin/reboot'));
    expect(() => rootfsEntries(copy)).toThrow(/sbin\/reboot listed as executable but not a file under/);
    expect(() => rootfsEntries(copy, ['init', 'sbin/poweroff', 'usr/lib/hype/run-tests'])).not.toThrow();
  });
});

describe.skipIf(!existsSync(DEFAULT_BUSYBOX))('an initrd built from a rootfs without executable bits', () => {
  it('has /init and the other scripts at 0755, byte for byte the same archive', () => {
    const copy = strippedCopy('initrd');
    const archive = buildInitrd({ rootfs: copy });
    const members = new Map(decodeNewc(archive).map((m) => [m.name, m]));
    for (const path of ['init', 'sbin/poweroff', 'sbin/reboot', 'usr/lib/hype/run-tests']) {
      const member = members.get(path);
      expect(member, path).toBeDefined();
      expect(member!.header.mode & S_IFMT, path).toBe(S_IFREG);
      expect(member!.header.mode & 0o7777, path).toBe(0o755);
    }
    expect(members.get('etc/profile')!.header.mode & 0o7777).toBe(0o644);
    expect(members.get('usr/lib/hype')!.header.mode & 0o7777).toBe(0o755);
    expect(archive.equals(buildInitrd())).toBe(true);
  });
});
