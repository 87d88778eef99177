// Every request type and every malformed-request case, against a memory backend over a Uint8Array
// guest RAM. Each case checks the status byte, the used length and that the disk/guest is untouched
// where it must be.
import { describe, expect, it, vi } from 'vitest';
import { BlkRequestType as T, BlkStatus as S, type BlockBackend, MemoryBackend, encodeSerial } from '../src/index.js';
import { TestRam, bytesEqual, headerBytes, limitsOf, linuxChain, run, segmentBytes } from './helpers.js';

const DISK = 64 * 1024; // 128 sectors
const SECTORS = DISK / 512;

function pattern(len: number, seed = 1): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return out;
}

const DISK_PATTERN = pattern(DISK);

function disk(readOnly = false): MemoryBackend {
  return new MemoryBackend(DISK, { contents: DISK_PATTERN, readOnly });
}

describe('valid requests', () => {
  it('IN reads sectors into the guest buffer; used len = data + status', async () => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, T.IN, 3, { bytes: 1024, writable: true });
    const r = await run(ram, c.chain, d);
    expect(r).toMatchObject({ status: S.OK, usedLen: 1025 });
    expect(ram.read(c.data!)).toEqual(d.bytes.slice(3 * 512, 5 * 512));
  });

  it('OUT writes the guest buffer to the disk; used len = status only', async () => {
    const ram = new TestRam();
    const d = disk();
    const data = pattern(2048, 9);
    const c = linuxChain(ram, T.OUT, 10, { bytes: data, writable: false });
    const r = await run(ram, c.chain, d);
    expect(r).toMatchObject({ status: S.OK, usedLen: 1 });
    expect(d.bytes.slice(10 * 512, 14 * 512)).toEqual(data);
  });

  it('accepts any framing: header split over two descriptors, IN data sharing the status descriptor, data split', async () => {
    const ram = new TestRam();
    const d = disk();
    const h = headerBytes(T.IN, 7);
    const h1 = ram.buffer(h.subarray(0, 5), false);
    const h2 = ram.buffer(h.subarray(5), false);
    const d1 = ram.buffer(300, true);
    const d2 = ram.buffer(212 + 1, true, 0xff); // 212 data bytes + the status byte
    const r = await run(ram, [h1, h2, d1, d2], d);
    expect(r).toMatchObject({ status: S.OK, usedLen: 513 });
    const got = new Uint8Array([...ram.read(d1), ...ram.read(d2).subarray(0, 212)]);
    expect(got).toEqual(d.bytes.slice(7 * 512, 8 * 512));
  });

  it('OUT data following the header in the same descriptor', async () => {
    const ram = new TestRam();
    const d = disk();
    const data = pattern(512, 4);
    const hd = ram.buffer(new Uint8Array([...headerBytes(T.OUT, 0), ...data]), false);
    const st = ram.buffer(1, true, 0xff);
    expect(await run(ram, [hd, st], d)).toMatchObject({ status: S.OK, usedLen: 1 });
    expect(d.bytes.slice(0, 512)).toEqual(data);
  });

  it('IN of the last sector succeeds (range ends exactly at capacity)', async () => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, T.IN, SECTORS - 1, { bytes: 512, writable: true });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.OK, usedLen: 513 });
    expect(ram.read(c.data!)).toEqual(d.bytes.slice(DISK - 512));
  });

  it('IN with no data is a no-op success', async () => {
    const ram = new TestRam();
    const c = linuxChain(ram, T.IN, 0);
    expect(await run(ram, c.chain, disk())).toMatchObject({ status: S.OK, usedLen: 1 });
  });

  it('FLUSH calls the backend flush', async () => {
    const ram = new TestRam();
    const d = disk();
    const flush = vi.spyOn(d, 'flush');
    expect(await run(ram, linuxChain(ram, T.FLUSH, 0).chain, d)).toMatchObject({ status: S.OK, usedLen: 1 });
    expect(flush).toHaveBeenCalledTimes(1);
  });

  it('FLUSH on a read-only disk succeeds (OVMF and Linux flush read-only disks too)', async () => {
    const ram = new TestRam();
    expect(await run(ram, linuxChain(ram, T.FLUSH, 0).chain, disk(true))).toMatchObject({ status: S.OK, usedLen: 1 });
  });

  it('GET_ID writes the 20-byte NUL-padded serial; used len 21', async () => {
    const ram = new TestRam();
    const c = linuxChain(ram, T.GET_ID, 0, { bytes: 20, writable: true });
    const r = await run(ram, c.chain, disk(), { id: encodeSerial('hype-disk-1') });
    expect(r).toMatchObject({ status: S.OK, usedLen: 21 });
    const want = new Uint8Array(20);
    want.set(new TextEncoder().encode('hype-disk-1'));
    expect(ram.read(c.data!)).toEqual(want);
  });

  it('GET_ID with a 20-character serial has no NUL terminator', async () => {
    const ram = new TestRam();
    const c = linuxChain(ram, T.GET_ID, 0, { bytes: 20, writable: true });
    await run(ram, c.chain, disk(), { id: encodeSerial('ABCDEFGHIJKLMNOPQRST') });
    expect(new TextDecoder().decode(ram.read(c.data!))).toBe('ABCDEFGHIJKLMNOPQRST');
  });

  it('DISCARD of several segments (memory backend zeroes them)', async () => {
    const ram = new TestRam();
    const d = disk();
    const segs = segmentBytes([
      { sector: 2, numSectors: 2 },
      { sector: 100, numSectors: 28 },
    ]);
    const c = linuxChain(ram, T.DISCARD, 0, { bytes: segs, writable: false });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.OK, usedLen: 1 });
    expect(d.bytes.slice(1024, 2048).every((b) => b === 0)).toBe(true);
    expect(d.bytes.slice(100 * 512).every((b) => b === 0)).toBe(true);
    expect(d.bytes.slice(0, 1024)).toEqual(DISK_PATTERN.slice(0, 1024));
  });

  it('WRITE_ZEROES with and without UNMAP reads back zeroes', async () => {
    const ram = new TestRam();
    const d = disk();
    const segs = segmentBytes([
      { sector: 0, numSectors: 1, flags: 1 },
      { sector: 5, numSectors: 3, flags: 0 },
    ]);
    const c = linuxChain(ram, T.WRITE_ZEROES, 0, { bytes: segs, writable: false });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.OK, usedLen: 1 });
    expect(d.bytes.slice(0, 512).every((b) => b === 0)).toBe(true);
    expect(d.bytes.slice(5 * 512, 8 * 512).every((b) => b === 0)).toBe(true);
    expect(d.bytes.slice(512, 5 * 512)).toEqual(DISK_PATTERN.slice(512, 5 * 512));
  });
});

describe('malformed requests', () => {
  async function expectUntouched(d: MemoryBackend) {
    expect(bytesEqual(d.bytes, DISK_PATTERN)).toBe(true);
  }

  it('header in a device-writable buffer -> IOERR', async () => {
    const ram = new TestRam();
    const d = disk();
    const h = ram.buffer(headerBytes(T.OUT, 0), true);
    const data = ram.buffer(512, true);
    const st = ram.buffer(1, true, 0xff);
    expect(await run(ram, [h, data, st], d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    await expectUntouched(d);
  });

  it('header shorter than 16 bytes -> IOERR', async () => {
    const ram = new TestRam();
    const h = ram.buffer(headerBytes(T.IN, 0).subarray(0, 15), false);
    const st = ram.buffer(1, true, 0xff);
    expect(await run(ram, [h, st], disk())).toMatchObject({ status: S.IOERR, usedLen: 1 });
  });

  it('no status (last descriptor device-readable) -> nothing written, used len 0', async () => {
    const ram = new TestRam();
    const d = disk();
    const h = ram.buffer(headerBytes(T.OUT, 0), false);
    const data = ram.buffer(pattern(512, 3), false);
    const before = ram.bytes.slice();
    const r = await run(ram, [h, data], d);
    expect(r.usedLen).toBe(0);
    expect(bytesEqual(ram.bytes, before)).toBe(true);
    await expectUntouched(d);
  });

  it('empty status descriptor -> nothing written, used len 0', async () => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, T.IN, 0, { bytes: 512, writable: true });
    const empty = { addr: ram.alloc(1), len: 0, writable: true };
    const before = ram.bytes.slice();
    const r = await run(ram, [c.header, c.data!, empty], d, { statusAt: c.data });
    expect(r.usedLen).toBe(0);
    expect(bytesEqual(ram.bytes, before)).toBe(true);
  });

  it('status byte outside guest memory -> nothing written, used len 0', async () => {
    const ram = new TestRam();
    const h = ram.buffer(headerBytes(T.FLUSH, 0), false);
    const st = { addr: ram.bytes.length + 0x1000, len: 1, writable: true };
    const before = ram.bytes.slice();
    expect((await run(ram, [h, st], disk())).usedLen).toBe(0);
    expect(bytesEqual(ram.bytes, before)).toBe(true);
  });

  it('empty chain -> used len 0', async () => {
    const ram = new TestRam();
    expect((await run(ram, [], disk())).usedLen).toBe(0);
  });

  it('data buffer outside guest memory -> IOERR, nothing transferred', async () => {
    const ram = new TestRam();
    const d = disk();
    const h = ram.buffer(headerBytes(T.OUT, 0), false);
    const data = { addr: ram.bytes.length - 256, len: 512, writable: false };
    const st = ram.buffer(1, true, 0xff);
    expect(await run(ram, [h, data, st], d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    await expectUntouched(d);
  });

  it('a device-readable buffer after a device-writable one -> IOERR', async () => {
    const ram = new TestRam();
    const d = disk();
    const h = ram.buffer(headerBytes(T.OUT, 0), false);
    const w = ram.buffer(16, true);
    const data = ram.buffer(pattern(512), false);
    const st = ram.buffer(1, true, 0xff);
    expect(await run(ram, [h, w, data, st], d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    await expectUntouched(d);
  });

  it.each([
    ['IN', T.IN, true],
    ['OUT', T.OUT, false],
  ] as const)('%s with a data length that is not a multiple of 512 -> IOERR, nothing transferred', async (_n, type, writable) => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, type, 0, { bytes: writable ? 513 : pattern(513), writable });
    const before = ram.bytes.slice();
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    await expectUntouched(d);
    if (writable) expect(ram.read(c.data!)).toEqual(before.subarray(c.data!.addr, c.data!.addr + 513));
  });

  it.each([
    ['starts at capacity', BigInt(SECTORS), 512],
    ['ends one sector past capacity', BigInt(SECTORS - 1), 1024],
    ['sector near 2^64 (u64 sum would wrap)', 0xffff_ffff_ffff_ffffn, 512],
    ['sector 2^63', 1n << 63n, 512],
  ])('IN/OUT range that %s -> IOERR', async (_n, sector, len) => {
    for (const [type, writable] of [
      [T.IN, true],
      [T.OUT, false],
    ] as const) {
      const ram = new TestRam();
      const d = disk();
      const c = linuxChain(ram, type, sector, { bytes: writable ? len : pattern(len), writable });
      expect(await run(ram, c.chain, d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
      await expectUntouched(d);
    }
  });

  it('FLUSH with sector != 0 -> IOERR (driver MUST send 0), backend not flushed', async () => {
    const ram = new TestRam();
    const d = disk();
    const flush = vi.spyOn(d, 'flush');
    expect(await run(ram, linuxChain(ram, T.FLUSH, 1).chain, d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    expect(flush).not.toHaveBeenCalled();
  });

  it.each([
    ['SCSI_CMD (legacy)', 2],
    ['FLUSH_OUT (legacy)', 5],
    ['GET_LIFETIME', 10],
    ['SECURE_ERASE', 14],
    ['ZONE_REPORT', 16],
    ['BARRIER | OUT (legacy)', 0x8000_0001],
    ['0xffffffff', 0xffff_ffff],
  ])('unknown type %s -> UNSUPP', async (_n, type) => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, type, 0, { bytes: pattern(512), writable: false });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.UNSUPP, usedLen: 1 });
    await expectUntouched(d);
  });

  it('OUT to a read-only disk -> IOERR, nothing written', async () => {
    const ram = new TestRam();
    const d = disk(true);
    const write = vi.spyOn(d, 'write');
    const c = linuxChain(ram, T.OUT, 0, { bytes: pattern(512, 5), writable: false });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    expect(write).not.toHaveBeenCalled();
    await expectUntouched(d);
  });

  it.each([
    ['DISCARD', T.DISCARD],
    ['WRITE_ZEROES', T.WRITE_ZEROES],
  ])('%s to a read-only disk -> IOERR, nothing written', async (_n, type) => {
    const ram = new TestRam();
    const d = disk(true);
    const c = linuxChain(ram, type, 0, { bytes: segmentBytes([{ sector: 0, numSectors: 1 }]), writable: false });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    await expectUntouched(d);
  });

  it('IN with device-readable data buffers -> IOERR, guest buffers untouched', async () => {
    const ram = new TestRam();
    const c = linuxChain(ram, T.IN, 0, { bytes: pattern(512, 2), writable: false });
    expect(await run(ram, c.chain, disk())).toMatchObject({ status: S.IOERR, usedLen: 1 });
    expect(ram.read(c.data!)).toEqual(pattern(512, 2));
  });

  it('OUT with device-writable data buffers -> IOERR, disk untouched', async () => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, T.OUT, 0, { bytes: 512, writable: true });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
    await expectUntouched(d);
  });

  it('GET_ID with a buffer shorter than 20 bytes -> IOERR', async () => {
    const ram = new TestRam();
    const c = linuxChain(ram, T.GET_ID, 0, { bytes: 19, writable: true });
    expect(await run(ram, c.chain, disk())).toMatchObject({ status: S.IOERR, usedLen: 1 });
    expect(ram.read(c.data!).every((b) => b === 0xee)).toBe(true);
  });

  it('GET_ID with device-readable data -> IOERR', async () => {
    const ram = new TestRam();
    const h = ram.buffer(headerBytes(T.GET_ID, 0), false);
    const junk = ram.buffer(4, false);
    const data = ram.buffer(20, true);
    const st = ram.buffer(1, true, 0xff);
    expect(await run(ram, [h, junk, data, st], disk())).toMatchObject({ status: S.IOERR, usedLen: 1 });
  });

  describe.each([
    ['DISCARD', T.DISCARD, 'maxDiscardSeg', 'maxDiscardSectors'],
    ['WRITE_ZEROES', T.WRITE_ZEROES, 'maxWriteZeroesSeg', 'maxWriteZeroesSectors'],
  ] as const)('%s segments', (name, type, segKey, sectorsKey) => {
    async function expectSegs(data: Uint8Array, status: number, overrides = {}) {
      const ram = new TestRam();
      const d = disk();
      const c = linuxChain(ram, type, 0, { bytes: data, writable: false });
      expect(await run(ram, c.chain, d, { limits: limitsOf(d, overrides) })).toMatchObject({ status, usedLen: 1 });
      await expectUntouched(d);
    }

    it('more segments than max -> IOERR', async () => {
      const segs = Array.from({ length: 5 }, (_, i) => ({ sector: i, numSectors: 1 }));
      await expectSegs(segmentBytes(segs), S.IOERR, { [segKey]: 4 });
    });

    it('a segment longer than the max sectors -> IOERR', async () => {
      await expectSegs(segmentBytes([{ sector: 0, numSectors: 9 }]), S.IOERR, { [sectorsKey]: 8 });
    });

    it('unknown flag bits -> UNSUPP', async () => {
      await expectSegs(segmentBytes([{ sector: 0, numSectors: 1 }, { sector: 1, numSectors: 1, flags: 0x2 }]), S.UNSUPP);
    });

    it('unknown flags are UNSUPP even next to an out-of-range segment', async () => {
      await expectSegs(segmentBytes([{ sector: SECTORS, numSectors: 1 }, { sector: 0, numSectors: 1, flags: 0x8000_0000 }]), S.UNSUPP);
    });

    it('a range past capacity -> IOERR (no segment applied)', async () => {
      await expectSegs(segmentBytes([{ sector: 0, numSectors: 1 }, { sector: SECTORS - 1, numSectors: 2 }]), S.IOERR);
    });

    it('a sector near 2^64 (u64 sum would wrap) -> IOERR', async () => {
      await expectSegs(segmentBytes([{ sector: 0xffff_ffff_ffff_fff0n, numSectors: 0x20 }]), S.IOERR);
    });

    it('segment bytes not a multiple of 16 -> IOERR', async () => {
      await expectSegs(segmentBytes([{ sector: 0, numSectors: 1 }]).subarray(0, 15), S.IOERR);
      await expectSegs(new Uint8Array([...segmentBytes([{ sector: 0, numSectors: 1 }]), 0]), S.IOERR);
    });

    it('no segment at all -> IOERR', async () => {
      await expectSegs(new Uint8Array(0), S.IOERR);
    });

    it('device-writable bytes besides the status -> IOERR', async () => {
      const ram = new TestRam();
      const d = disk();
      const h = ram.buffer(headerBytes(type, 0), false);
      const segs = ram.buffer(segmentBytes([{ sector: 0, numSectors: 1 }]), false);
      const extra = ram.buffer(16, true);
      const st = ram.buffer(1, true, 0xff);
      expect(await run(ram, [h, segs, extra, st], d)).toMatchObject({ status: S.IOERR, usedLen: 1 });
      await expectUntouched(d);
    });

    it(`${name} on a backend without support -> UNSUPP`, async () => {
      const ram = new TestRam();
      const d = disk();
      const bare: BlockBackend = { size: d.size, readOnly: false, read: d.read.bind(d), write: d.write.bind(d), flush: d.flush.bind(d), close: d.close.bind(d) };
      const c = linuxChain(ram, type, 0, { bytes: segmentBytes([{ sector: 0, numSectors: 1 }]), writable: false });
      expect(await run(ram, c.chain, bare)).toMatchObject({ status: S.UNSUPP, usedLen: 1 });
      await expectUntouched(d);
    });
  });

  it('DISCARD with the UNMAP flag -> UNSUPP (only valid for WRITE_ZEROES)', async () => {
    const ram = new TestRam();
    const d = disk();
    const c = linuxChain(ram, T.DISCARD, 0, { bytes: segmentBytes([{ sector: 0, numSectors: 1, flags: 1 }]), writable: false });
    expect(await run(ram, c.chain, d)).toMatchObject({ status: S.UNSUPP, usedLen: 1 });
    await expectUntouched(d);
  });

  it('a backend failure -> IOERR with the reason, used len 1', async () => {
    const ram = new TestRam();
    const d = disk();
    d.read = async () => {
      throw new Error('disk on fire');
    };
    const c = linuxChain(ram, T.IN, 0, { bytes: 512, writable: true });
    const r = await run(ram, c.chain, d);
    expect(r).toMatchObject({ status: S.IOERR, usedLen: 1 });
    expect(r.problem).toContain('disk on fire');
  });

  it('a chain of thousands of one-byte descriptors stays correct (no quadratic blowup)', async () => {
    const ram = new TestRam(4 << 20);
    const d = disk();
    const h = headerBytes(T.DISCARD, 0);
    const segs = segmentBytes(Array.from({ length: 256 }, (_, i) => ({ sector: i % SECTORS, numSectors: 0 })));
    const bytes = new Uint8Array([...h, ...segs]);
    const chain = Array.from(bytes, (b) => ram.buffer(new Uint8Array([b]), false));
    chain.push(ram.buffer(1, true, 0xff));
    expect(await run(ram, chain, d, { limits: limitsOf(d, { segMax: chain.length }) })).toMatchObject({ status: S.OK, usedLen: 1 });
  });

  it('a request with more descriptors than seg_max + 2 gets IOERR (seg_max is enforced, not only advertised)', async () => {
    const ram = new TestRam(1 << 20);
    const d = disk();
    const segMax = 4;
    const data = Array.from({ length: segMax + 1 }, () => ram.buffer(512, true));
    const c = [ram.buffer(headerBytes(T.IN, 0), false), ...data, ram.buffer(1, true, 0xff)];
    const r = await run(ram, c, d, { limits: limitsOf(d, { segMax }) });
    expect(r).toMatchObject({ status: S.IOERR, usedLen: 1 });
    expect(r.problem).toContain('exceed seg_max 4');
    const ok = [ram.buffer(headerBytes(T.IN, 0), false), ...data.slice(1), ram.buffer(1, true, 0xff)];
    expect(await run(ram, ok, d, { limits: limitsOf(d, { segMax }) })).toMatchObject({ status: S.OK });
  });
});
