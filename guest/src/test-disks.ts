/**
 * The disks of the guest `blk` tests, host side: creation before the boot and verification after it.
 * Roles (see guest/README.md): vda read-write ext4, vdb read-only pattern disk, vdc raw read-write.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkExt4Image, makeExt4Image, readExt4File } from './ext4.js';
import {
  blkInputText,
  blkPattern,
  VDA_INPUT_PATH,
  VDA_OUTPUT_LENGTH,
  VDA_OUTPUT_PATH,
  VDC_WRITE_LENGTH,
  VDC_WRITE_OFFSET,
} from './test-contract.js';

export interface TestDisks {
  /** Read-write ext4 image holding hype/input.txt; attach as the first disk. */
  vda: string;
  /** Raw image filled with the block pattern; attach read-only as the second disk. */
  vdb: string;
  /** Raw zero-filled image; attach read-write as the third disk. */
  vdc: string;
}

export interface TestDiskSizes {
  vdaMiB?: number;
  vdbMiB?: number;
  vdcMiB?: number;
}

/** Creates the three test disks in `dir` (vda.ext4, vdb.img, vdc.img). */
export function prepareTestDisks(dir: string, sizes: TestDiskSizes = {}): TestDisks {
  mkdirSync(dir, { recursive: true });
  const tree = join(dir, 'vda-tree');
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(join(tree, 'hype'), { recursive: true });
  writeFileSync(join(tree, VDA_INPUT_PATH), blkInputText());
  const disks: TestDisks = { vda: join(dir, 'vda.ext4'), vdb: join(dir, 'vdb.img'), vdc: join(dir, 'vdc.img') };
  makeExt4Image(tree, disks.vda, sizes.vdaMiB ?? 16);
  rmSync(tree, { recursive: true, force: true });
  writeFileSync(disks.vdb, blkPattern(0, (sizes.vdbMiB ?? 1) * 1024 * 1024));
  const vdcBytes = (sizes.vdcMiB ?? 4) * 1024 * 1024;
  if (vdcBytes < VDC_WRITE_OFFSET + VDC_WRITE_LENGTH) throw new Error(`prepareTestDisks: vdc must hold at least ${VDC_WRITE_OFFSET + VDC_WRITE_LENGTH} bytes`);
  const fd = openSync(disks.vdc, 'w');
  try {
    ftruncateSync(fd, vdcBytes);
  } finally {
    closeSync(fd);
  }
  return disks;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * Checks the disks after a guest ran `hype.test=blk`: vda's hype/output.bin is the pattern byte for
 * byte and the file system is clean, vdb is unchanged, vdc holds the pattern exactly at the agreed
 * range and zeros elsewhere. Returns the problems found (empty when all is well).
 */
export function verifyTestDisks(disks: TestDisks): string[] {
  const problems: string[] = [];
  try {
    const output = readExt4File(disks.vda, VDA_OUTPUT_PATH);
    const at = firstDifference(output, blkPattern(0, VDA_OUTPUT_LENGTH));
    if (at >= 0) problems.push(`vda ${VDA_OUTPUT_PATH}: ${output.length} bytes, first difference from the pattern at byte ${at}`);
    checkExt4Image(disks.vda);
  } catch (error) {
    problems.push(`vda: ${(error as Error).message}`);
  }
  const vdb = readFileSync(disks.vdb);
  const vdbAt = firstDifference(vdb, blkPattern(0, vdb.length));
  if (vdbAt >= 0) problems.push(`vdb (read-only) changed at byte ${vdbAt}`);
  const vdc = readFileSync(disks.vdc);
  const written = vdc.subarray(VDC_WRITE_OFFSET, VDC_WRITE_OFFSET + VDC_WRITE_LENGTH);
  const vdcAt = firstDifference(written, blkPattern(VDC_WRITE_OFFSET, VDC_WRITE_LENGTH));
  if (vdcAt >= 0) problems.push(`vdc: byte ${VDC_WRITE_OFFSET + vdcAt} differs from the pattern the guest wrote`);
  const strayBefore = vdc.subarray(0, VDC_WRITE_OFFSET).findIndex((b) => b !== 0);
  if (strayBefore >= 0) problems.push(`vdc: byte ${strayBefore}, before the written range, is not zero`);
  const strayAfter = vdc.subarray(VDC_WRITE_OFFSET + VDC_WRITE_LENGTH).findIndex((b) => b !== 0);
  if (strayAfter >= 0) problems.push(`vdc: byte ${VDC_WRITE_OFFSET + VDC_WRITE_LENGTH + strayAfter}, after the written range, is not zero`);
  return problems;
}
