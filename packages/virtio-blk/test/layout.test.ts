// The layout constants against Linux's include/uapi/linux/virtio_blk.h: compiled with the host's C
// compiler when there is one (offsetof/sizeof/#define values), and against numbers copied from the header.
import { describe, expect, it } from 'vitest';
import { cProgram } from '../../../scripts/test/c-values.js';
import {
  BLK_CONFIG,
  BLK_ID_BYTES,
  BlkFeature,
  BlkRequestType,
  BlkStatus,
  DISCARD_SEGMENT,
  REQUEST_HEADER,
  SECTOR_SIZE,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_BLOCK,
  WRITE_ZEROES_FLAG_UNMAP,
} from '../src/index.js';

const blkH = cProgram({
  check: 'the compiled virtio_blk.h check',
  includes: ['linux/virtio_blk.h', 'linux/virtio_config.h', 'linux/virtio_ids.h'],
});

const configFields: Record<keyof Omit<typeof BLK_CONFIG, 'SIZE'>, string> = {
  capacity: 'capacity',
  sizeMax: 'size_max',
  segMax: 'seg_max',
  geometryCylinders: 'geometry.cylinders',
  geometryHeads: 'geometry.heads',
  geometrySectors: 'geometry.sectors',
  blkSize: 'blk_size',
  physicalBlockExp: 'physical_block_exp',
  alignmentOffset: 'alignment_offset',
  minIoSize: 'min_io_size',
  optIoSize: 'opt_io_size',
  writeback: 'wce',
  numQueues: 'num_queues',
  maxDiscardSectors: 'max_discard_sectors',
  maxDiscardSeg: 'max_discard_seg',
  discardSectorAlignment: 'discard_sector_alignment',
  maxWriteZeroesSectors: 'max_write_zeroes_sectors',
  maxWriteZeroesSeg: 'max_write_zeroes_seg',
  writeZeroesMayUnmap: 'write_zeroes_may_unmap',
};

describe('virtio-blk layout vs virtio_blk.h', () => {
  it.skipIf(!blkH.canCompile)('matches the compiled kernel header', () => {
    const exprs: Record<string, string> = {
      id: 'VIRTIO_ID_BLOCK',
      version1: 'VIRTIO_F_VERSION_1',
      idBytes: 'VIRTIO_BLK_ID_BYTES',
      unmap: 'VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP',
      hdrType: 'offsetof(struct virtio_blk_outhdr, type)',
      hdrIoprio: 'offsetof(struct virtio_blk_outhdr, ioprio)',
      hdrSector: 'offsetof(struct virtio_blk_outhdr, sector)',
      hdrSize: 'sizeof(struct virtio_blk_outhdr)',
      segSector: 'offsetof(struct virtio_blk_discard_write_zeroes, sector)',
      segNum: 'offsetof(struct virtio_blk_discard_write_zeroes, num_sectors)',
      segFlags: 'offsetof(struct virtio_blk_discard_write_zeroes, flags)',
      segSize: 'sizeof(struct virtio_blk_discard_write_zeroes)',
      cfgUnused1End: 'offsetof(struct virtio_blk_config, unused1) + 3',
    };
    for (const [k, f] of Object.entries(configFields)) exprs[`cfg_${k}`] = `offsetof(struct virtio_blk_config, ${f})`;
    for (const k of Object.keys(BlkFeature)) exprs[`f_${k}`] = `VIRTIO_BLK_F_${k}`;
    for (const k of Object.keys(BlkRequestType)) exprs[`t_${k}`] = `VIRTIO_BLK_T_${k}`;
    for (const k of Object.keys(BlkStatus)) exprs[`s_${k}`] = `VIRTIO_BLK_S_${k}`;
    const c = blkH.values(exprs);

    expect(VIRTIO_ID_BLOCK).toBe(c.id);
    expect(VIRTIO_F_VERSION_1).toBe(c.version1);
    expect(BLK_ID_BYTES).toBe(c.idBytes);
    expect(WRITE_ZEROES_FLAG_UNMAP).toBe(c.unmap);
    expect(REQUEST_HEADER).toEqual({ type: c.hdrType, ioprio: c.hdrIoprio, sector: c.hdrSector, SIZE: c.hdrSize });
    expect(DISCARD_SEGMENT).toEqual({ sector: c.segSector, numSectors: c.segNum, flags: c.segFlags, SIZE: c.segSize });
    for (const k of Object.keys(configFields) as (keyof typeof configFields)[]) expect([k, BLK_CONFIG[k]]).toEqual([k, c[`cfg_${k}`]]);
    expect(BLK_CONFIG.SIZE).toBe(c.cfgUnused1End);
    for (const [k, v] of Object.entries(BlkFeature)) expect([k, v]).toEqual([k, c[`f_${k}`]]);
    for (const [k, v] of Object.entries(BlkRequestType)) expect([k, v]).toEqual([k, c[`t_${k}`]]);
    for (const [k, v] of Object.entries(BlkStatus)) expect([k, v]).toEqual([k, c[`s_${k}`]]);
  });

  it('matches the numbers in virtio_blk.h and virtio 1.2 §5.2', () => {
    expect(VIRTIO_ID_BLOCK).toBe(2);
    expect(SECTOR_SIZE).toBe(512);
    expect(BlkFeature).toMatchObject({ SIZE_MAX: 1, SEG_MAX: 2, RO: 5, BLK_SIZE: 6, FLUSH: 9, DISCARD: 13, WRITE_ZEROES: 14 });
    expect(BlkRequestType).toEqual({ IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13 });
    expect(BlkStatus).toEqual({ OK: 0, IOERR: 1, UNSUPP: 2 });
    expect(BLK_CONFIG).toMatchObject({
      capacity: 0,
      sizeMax: 8,
      segMax: 12,
      geometryCylinders: 16,
      blkSize: 20,
      maxDiscardSectors: 36,
      maxDiscardSeg: 40,
      discardSectorAlignment: 44,
      maxWriteZeroesSectors: 48,
      maxWriteZeroesSeg: 52,
      writeZeroesMayUnmap: 56,
      SIZE: 60,
    });
  });
});
