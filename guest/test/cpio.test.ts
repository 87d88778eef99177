import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, lutimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeNewc,
  decodeNewcHeader,
  encodeNewc,
  encodeNewcHeader,
  NEWC_FIELDS,
  NEWC_HEADER_LENGTH,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  type CpioEntry,
} from '@hype/guest';

const hasCpio = spawnSync('cpio', ['--version']).status === 0;
if (!hasCpio) console.warn('[hype] GNU cpio not installed (apt-get install cpio): skipping the comparisons with it in guest/test/cpio.test.ts');

const scratch = mkdtempSync(join(tmpdir(), 'hype-cpio-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A header as the spec writes it: magic then 13 fields of 8 uppercase hex digits. */
function specHeader(fields: number[]): string {
  return '070701' + fields.map((f) => f.toString(16).toUpperCase().padStart(8, '0')).join('');
}

describe('newc header layout', () => {
  it('is 110 bytes: 6 of magic and 13 fields of 8 hex digits in the spec order', () => {
    expect(NEWC_HEADER_LENGTH).toBe(110);
    expect(NEWC_FIELDS).toEqual([
      'ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check',
    ]);
    const header = { ino: 1, mode: 0o100644, uid: 2, gid: 3, nlink: 1, mtime: 0x5f5e100, filesize: 0xabcdef, devmajor: 4, devminor: 5, rdevmajor: 6, rdevminor: 7, namesize: 9, check: 0 };
    const text = encodeNewcHeader(header);
    expect(text).toHaveLength(110);
    expect(text).toBe(specHeader([1, 0o100644, 2, 3, 1, 0x5f5e100, 0xabcdef, 4, 5, 6, 7, 9, 0]));
    expect(decodeNewcHeader(Buffer.from(text, 'latin1'))).toEqual(header);
  });

  it('rejects values that do not fit 8 hex digits', () => {
    const ok = { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 0, mtime: 0, filesize: 0, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0, namesize: 0, check: 0 };
    expect(() => encodeNewcHeader({ ...ok, filesize: 2 ** 32 })).toThrow(/filesize/);
    expect(() => encodeNewcHeader({ ...ok, uid: -1 })).toThrow(/uid/);
    expect(() => decodeNewcHeader(Buffer.from('070707' + '0'.repeat(104), 'latin1'))).toThrow(/bad magic/);
  });
});

describe('encodeNewc against the format spec', () => {
  it('writes header, name+NUL padded to 4, data padded to 4, then TRAILER!!!', () => {
    const archive = encodeNewc([
      { type: 'dir', path: '/d', mode: 0o755 },
      { type: 'file', path: 'd/f', data: 'hello', mode: 0o644, mtime: 1000 },
      { type: 'symlink', path: 'l', target: 'd/f' },
      { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    ]);
    const pad = (s: string) => s + '\0'.repeat((4 - (s.length % 4)) % 4);
    const expected =
      // "d": 110 + 2 = 112, already aligned
      specHeader([1, S_IFDIR | 0o755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0]) + 'd\0' +
      // "d/f": 110 + 4 = 114 -> 2 bytes of padding; data "hello" 5 -> 3 bytes of padding
      pad(specHeader([2, S_IFREG | 0o644, 0, 0, 1, 1000, 5, 0, 0, 0, 0, 4, 0]) + 'd/f\0') + pad('hello') +
      pad(specHeader([3, S_IFLNK | 0o777, 0, 0, 1, 0, 3, 0, 0, 0, 0, 2, 0]) + 'l\0') + pad('d/f') +
      pad(specHeader([4, S_IFCHR | 0o600, 0, 0, 1, 0, 0, 0, 0, 5, 1, 12, 0]) + 'dev/console\0') +
      pad(specHeader([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0]) + 'TRAILER!!!\0');
    expect(archive.toString('latin1')).toBe(expected);
    expect(archive.length % 4).toBe(0);
  });

  it('reads back what it wrote', () => {
    const entries: CpioEntry[] = [
      { type: 'dir', path: 'a' },
      { type: 'file', path: 'a/b', data: new Uint8Array([0, 1, 2, 255]), mode: 0o755 },
      { type: 'file', path: 'empty', data: '' },
      { type: 'fifo', path: 'pipe' },
      { type: 'blockdev', path: 'vda', major: 254, minor: 0 },
    ];
    const members = decodeNewc(encodeNewc(entries));
    expect(members.map((m) => m.name)).toEqual(['a', 'a/b', 'empty', 'pipe', 'vda']);
    expect([...members[1].data]).toEqual([0, 1, 2, 255]);
    expect(members[1].header.mode).toBe(S_IFREG | 0o755);
    expect(members[2].data.length).toBe(0);
    expect(members[4].header.rdevmajor).toBe(254);
  });

  it('rejects duplicates, "..", the trailer name and bad device numbers', () => {
    expect(() => encodeNewc([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a/' }])).toThrow(/duplicate member a/);
    expect(() => encodeNewc([{ type: 'file', path: 'a/../b', data: '' }])).toThrow(/'\.\.'/);
    expect(() => encodeNewc([{ type: 'file', path: 'TRAILER!!!', data: '' }])).toThrow(/reserved/);
    expect(() => encodeNewc([{ type: 'chardev', path: 'x', major: -1, minor: 0 }])).toThrow(/major/);
    expect(() => encodeNewc([{ type: 'symlink', path: 'x', target: '' }])).toThrow(/empty target/);
  });

  it('rejects a truncated archive when reading', () => {
    const archive = encodeNewc([{ type: 'file', path: 'f', data: 'x'.repeat(100) }]);
    expect(() => decodeNewc(archive.subarray(0, 150))).toThrow(/past the end/);
  });
});

describe.skipIf(!hasCpio)('encodeNewc against GNU cpio', () => {
  it('is byte-identical to `cpio -o -H newc --reproducible` for the same tree', () => {
    const root = join(scratch, 'tree');
    mkdirSync(join(root, 'd'), { recursive: true });
    writeFileSync(join(root, 'd', 'f'), 'hello\n');
    writeFileSync(join(root, 'g'), Buffer.from([0, 1, 2, 3, 4, 5, 6]));
    symlinkSync('d/f', join(root, 'lnk'));
    chmodSync(join(root, 'd'), 0o755);
    chmodSync(join(root, 'd', 'f'), 0o644);
    chmodSync(join(root, 'g'), 0o750);
    for (const p of ['d/f', 'g', 'd']) utimesSync(join(root, p), 1000, 1000 + p.length);
    lutimesSync(join(root, 'lnk'), 77, 77);
    const gnu = execFileSync('cpio', ['-o', '-H', 'newc', '--reproducible', '--owner=0:0', '--quiet'], {
      cwd: root,
      input: 'd\nd/f\ng\nlnk\n',
    });
    const mtime = (p: string) => Math.floor(lstatSync(join(root, p)).mtimeMs / 1000);
    const ours = encodeNewc(
      [
        { type: 'dir', path: 'd', mode: 0o755, mtime: mtime('d') },
        { type: 'file', path: 'd/f', data: 'hello\n', mode: 0o644, mtime: mtime('d/f') },
        { type: 'file', path: 'g', data: Buffer.from([0, 1, 2, 3, 4, 5, 6]), mode: 0o750, mtime: mtime('g') },
        { type: 'symlink', path: 'lnk', target: 'd/f', mtime: mtime('lnk') },
      ],
      { firstIno: 0 }, // GNU's --renumber-inodes counts from 0
    );
    // GNU cpio pads the whole archive to its 512-byte block size; the members are identical.
    expect(gnu.length).toBe(Math.ceil(ours.length / 512) * 512);
    expect(gnu.subarray(0, ours.length).toString('latin1')).toBe(ours.toString('latin1'));
    expect(gnu.subarray(ours.length).every((b) => b === 0)).toBe(true);
  });

  it('lists and extracts with `cpio -t` / `cpio -i` to the same names, modes, data and links', () => {
    const entries: CpioEntry[] = [
      { type: 'dir', path: 'etc', mode: 0o700 },
      { type: 'file', path: 'etc/motd', data: 'welcome\n'.repeat(300), mode: 0o640 },
      { type: 'file', path: 'bin/odd', data: Buffer.from([1, 2, 3]), mode: 0o755 },
      { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
      ...(process.getuid?.() === 0 ? ([{ type: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 }] as CpioEntry[]) : []),
    ];
    const archive = encodeNewc([{ type: 'dir', path: 'bin' }, { type: 'dir', path: 'dev' }, ...entries]);
    const listing = execFileSync('cpio', ['-t', '--quiet'], { input: archive, encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual(['bin', 'dev', ...entries.map((e) => e.path)]);

    const out = join(scratch, 'extracted');
    mkdirSync(out);
    execFileSync('cpio', ['-i', '-d', '--quiet', '--no-absolute-filenames'], { cwd: out, input: archive });
    expect(readFileSync(join(out, 'etc/motd'), 'utf8')).toBe('welcome\n'.repeat(300));
    expect(lstatSync(join(out, 'etc')).mode & 0o7777).toBe(0o700);
    expect(lstatSync(join(out, 'etc/motd')).mode & 0o7777).toBe(0o640);
    expect([...readFileSync(join(out, 'bin/odd'))]).toEqual([1, 2, 3]);
    expect(readlinkSync(join(out, 'bin/sh'))).toBe('/bin/busybox');
    if (process.getuid?.() === 0) {
      const st = lstatSync(join(out, 'dev/null'));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe((1 << 8) | 3);
    }
  });
});
