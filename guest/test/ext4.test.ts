import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  blkPattern,
  makeExt4Image,
  prepareTestDisks,
  readExt4File,
  VDA_OUTPUT_LENGTH,
  VDA_OUTPUT_PATH,
  VDC_WRITE_LENGTH,
  VDC_WRITE_OFFSET,
  verifyTestDisks,
  blkInputText,
} from '@hype/guest';

const hasE2fsprogs = spawnSync('mke2fs', ['-V']).status === 0 || spawnSync('/sbin/mke2fs', ['-V']).status === 0;
if (!hasE2fsprogs) console.warn('[hype] e2fsprogs absent (apt-get install e2fsprogs): skipping guest/test/ext4.test.ts');

const scratch = mkdtempSync(join(tmpdir(), 'hype-ext4-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes a host file into an ext4 image, as the guest would have. */
function debugfsWrite(image: string, hostFile: string, path: string) {
  execFileSync('debugfs', ['-w', '-R', `write ${hostFile} ${path}`, image], { stdio: 'ignore' });
}

describe.skipIf(!hasE2fsprogs)('ext4 image helpers', () => {
  it('makeExt4Image + readExt4File round-trip a folder, binary content included', () => {
    const tree = join(scratch, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'hello.txt'), 'hello\n');
    const binary = Buffer.alloc(300_000, 0).map((_, i) => (i * 7) & 0xff);
    writeFileSync(join(tree, 'sub', 'data.bin'), binary);
    const image = join(scratch, 'fs.ext4');
    makeExt4Image(tree, image, 8);
    expect(readFileSync(image).length).toBe(8 << 20);
    expect(readExt4File(image, '/hello.txt').toString()).toBe('hello\n');
    expect(readExt4File(image, '/sub/data.bin').equals(binary)).toBe(true);
    expect(() => readExt4File(image, '/missing')).toThrow(/\/missing in .* is not a regular file/);
    expect(() => readExt4File(image, '/sub')).toThrow(/not a regular file/);
    expect(() => readExt4File(image, 'relative')).toThrow(/absolute/);
  });

  it('gives clear errors for bad arguments', () => {
    expect(() => makeExt4Image(join(scratch, 'nope'), join(scratch, 'x.img'), 8)).toThrow(/is not a directory/);
    expect(() => makeExt4Image(scratch, join(scratch, 'x.img'), 1)).toThrow(/sizeMiB/);
  });
});

describe.skipIf(!hasE2fsprogs)('test disks', () => {
  it('are created in their roles and verify only once the guest-side writes are there', () => {
    const disks = prepareTestDisks(join(scratch, 'disks'));
    expect(readExt4File(disks.vda, '/hype/input.txt').toString()).toBe(blkInputText());
    expect(readFileSync(disks.vdb).equals(blkPattern(0, 1 << 20))).toBe(true);
    expect(readFileSync(disks.vdc).every((b) => b === 0)).toBe(true);

    // Before the guest ran: everything it should have written is missing.
    const before = verifyTestDisks(disks);
    expect(before.some((p) => p.startsWith('vda: '))).toBe(true);
    expect(before.some((p) => p.startsWith('vdc: byte'))).toBe(true);

    // Do on the host what the guest does, then verify.
    const output = join(scratch, 'output.bin');
    writeFileSync(output, blkPattern(0, VDA_OUTPUT_LENGTH));
    debugfsWrite(disks.vda, output, VDA_OUTPUT_PATH);
    const fd = openSync(disks.vdc, 'r+');
    writeSync(fd, blkPattern(VDC_WRITE_OFFSET, VDC_WRITE_LENGTH), 0, VDC_WRITE_LENGTH, VDC_WRITE_OFFSET);
    closeSync(fd);
    expect(verifyTestDisks(disks)).toEqual([]);

    // A stray write next to the agreed range and a changed read-only disk are both caught.
    const fd2 = openSync(disks.vdc, 'r+');
    writeSync(fd2, Buffer.from([1]), 0, 1, VDC_WRITE_OFFSET + VDC_WRITE_LENGTH);
    closeSync(fd2);
    const fd3 = openSync(disks.vdb, 'r+');
    writeSync(fd3, Buffer.alloc(512), 0, 512, 4096);
    closeSync(fd3);
    expect(verifyTestDisks(disks)).toEqual([
      `vdb (read-only) changed at byte 4096`,
      `vdc: byte ${VDC_WRITE_OFFSET + VDC_WRITE_LENGTH}, after the written range, is not zero`,
    ]);
  });
});
