import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildInitrd,
  checkStaticX8664Elf,
  decodeNewc,
  DEFAULT_BUSYBOX,
  guestPath,
  layoutEntries,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  writeInitrd,
} from '@hype/guest';

const hasBusybox = existsSync(DEFAULT_BUSYBOX);
if (!hasBusybox) console.warn('[hype] /bin/busybox absent (apt-get install busybox-static): skipping initrd assembly tests');

const scratch = mkdtempSync(join(tmpdir(), 'hype-initrd-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('layoutEntries', () => {
  it('creates missing parents and puts every directory before its contents', () => {
    const entries = layoutEntries([[{ type: 'file', path: 'a/b/c', data: 'x' }, { type: 'dir', path: 'z' }]]);
    expect(entries.map((e) => e.path)).toEqual(['a', 'z', 'a/b', 'a/b/c']);
  });

  it('lets a later layer replace an earlier member at the same path', () => {
    const entries = layoutEntries([
      [{ type: 'symlink', path: 'sbin/poweroff', target: '/bin/busybox' }],
      [{ type: 'file', path: '/sbin/poweroff', data: '#!/bin/sh\n', mode: 0o755 }],
    ]);
    expect(entries.find((e) => e.path === 'sbin/poweroff')?.type).toBe('file');
  });

  it('refuses a file where a directory is needed', () => {
    expect(() => layoutEntries([[{ type: 'file', path: 'a', data: '' }, { type: 'file', path: 'a/b', data: '' }]])).toThrow(/a is a file/);
  });
});

describe('checkStaticX8664Elf', () => {
  it('accepts busybox-static and rejects a dynamic binary and a non-ELF file', () => {
    if (hasBusybox) expect(() => checkStaticX8664Elf(readFileSync(DEFAULT_BUSYBOX), DEFAULT_BUSYBOX)).not.toThrow();
    expect(() => checkStaticX8664Elf(readFileSync(process.execPath), 'node')).toThrow(/dynamically linked.*busybox-static/);
    expect(() => checkStaticX8664Elf(Buffer.from('#!/bin/sh\n'.padEnd(80)), 'script')).toThrow(/not an ELF/);
  });
});

describe.skipIf(!hasBusybox)('hype initrd', () => {
  const members = decodeNewc(buildInitrd());
  const byName = new Map(members.map((m) => [m.name, m]));
  const type = (name: string) => (byName.get(name)?.header.mode ?? 0) & S_IFMT;

  it('has an executable /init (our script) and a static /bin/busybox', () => {
    const init = byName.get('init');
    expect(type('init')).toBe(S_IFREG);
    expect(init!.header.mode & 0o111).toBe(0o111);
    expect(init!.data.toString()).toBe(readFileSync(guestPath('rootfs/init'), 'utf8'));
    expect(byName.get('bin/busybox')!.data.equals(readFileSync(DEFAULT_BUSYBOX))).toBe(true);
  });

  it('links every busybox applet to /bin/busybox, except the wrappers hype replaces', () => {
    const applets = execFileSync(DEFAULT_BUSYBOX, ['--list-full'], { encoding: 'utf8' }).trim().split('\n').filter((a) => a !== 'bin/busybox');
    expect(applets.length).toBeGreaterThan(100);
    for (const applet of applets) {
      if (applet === 'sbin/poweroff' || applet === 'sbin/reboot') continue;
      expect(type(applet), applet).toBe(S_IFLNK);
      expect(byName.get(applet)!.data.toString()).toBe('/bin/busybox');
    }
    expect(type('sbin/poweroff')).toBe(S_IFREG);
    expect(byName.get('sbin/poweroff')!.data.toString()).toContain('HYPE_PORT_POWEROFF');
    expect(type('bin/cttyhack')).toBe(S_IFLNK);
  });

  it('has the device nodes the kernel and /init need before devtmpfs is mounted', () => {
    const dev = (name: string) => byName.get(name)!.header;
    expect(type('dev/console')).toBe(S_IFCHR);
    expect([dev('dev/console').rdevmajor, dev('dev/console').rdevminor]).toEqual([5, 1]);
    expect([dev('dev/null').rdevmajor, dev('dev/null').rdevminor]).toEqual([1, 3]);
    expect([dev('dev/port').rdevmajor, dev('dev/port').rdevminor]).toEqual([1, 4]);
  });

  it('lists each directory before anything inside it, and nothing twice', () => {
    const seen = new Set<string>();
    for (const m of members) {
      const parent = m.name.includes('/') ? m.name.slice(0, m.name.lastIndexOf('/')) : undefined;
      if (parent) expect(seen.has(parent), `${parent} before ${m.name}`).toBe(true);
      expect(seen.has(m.name)).toBe(false);
      seen.add(m.name);
    }
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'mnt', 'usr/lib/hype']) expect(type(d), d).toBe(S_IFDIR);
    expect(byName.get('tmp')!.header.mode & 0o7777).toBe(0o1777);
  });

  it('records the init mode and carries the test runner', () => {
    expect(byName.get('etc/hype/init-mode')!.data.toString()).toBe('shell\n');
    const test = new Map(decodeNewc(buildInitrd({ init: 'test' })).map((m) => [m.name, m]));
    expect(test.get('etc/hype/init-mode')!.data.toString()).toBe('test\n');
    expect(type('usr/lib/hype/run-tests')).toBe(S_IFREG);
    expect(byName.get('usr/lib/hype/run-tests')!.header.mode & 0o111).toBe(0o111);
  });

  it('adds extra files and a replacement /init', () => {
    const custom = new Map(
      decodeNewc(buildInitrd({ initScript: '#!/bin/sh\necho custom\n', files: [{ path: '/opt/data/x.bin', data: Buffer.from([9, 8]) }] })).map((m) => [m.name, m]),
    );
    expect(custom.get('init')!.data.toString()).toBe('#!/bin/sh\necho custom\n');
    expect(custom.get('init')!.header.mode & 0o777).toBe(0o755);
    expect([...custom.get('opt/data/x.bin')!.data]).toEqual([9, 8]);
    expect((custom.get('opt')!.header.mode & S_IFMT)).toBe(S_IFDIR);
  });

  it('is reproducible and written atomically by writeInitrd', () => {
    expect(buildInitrd().equals(buildInitrd())).toBe(true);
    const out = join(scratch, 'initrd.cpio');
    const written = writeInitrd(out, { init: 'test' });
    expect(statSync(out).size).toBe(written.bytes);
    expect(readFileSync(out).equals(buildInitrd({ init: 'test' }))).toBe(true);
  });

  it('gives a clear error for a missing busybox or a bad init mode', () => {
    expect(() => buildInitrd({ busybox: '/nonexistent/busybox' })).toThrow(/busybox not found at \/nonexistent\/busybox: apt-get install busybox-static/);
    expect(() => buildInitrd({ init: 'bogus' as 'shell' })).toThrow(/init must be 'shell' or 'test'/);
  });

  it("has guest scripts that busybox's shell parses", () => {
    for (const script of ['init', 'sbin/poweroff', 'sbin/reboot', 'usr/lib/hype/run-tests', 'usr/lib/hype/functions.sh', 'usr/lib/hype/test-lib.sh', 'etc/profile']) {
      const result = spawnSync(DEFAULT_BUSYBOX, ['sh', '-n', guestPath('rootfs', script)], { encoding: 'utf8' });
      expect(result.status, `${script}: ${result.stderr}`).toBe(0);
    }
  });
});
