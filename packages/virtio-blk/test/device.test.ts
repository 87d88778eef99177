// The block device behind the real virtio-mmio transport and split queue, driven like a guest would.
import { Feature, MmioReg, Status, featureMask } from '@hype/virtio';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BLK_CONFIG,
  BlkFeature,
  BlkRequestType as T,
  BlkStatus as S,
  type BlockBackend,
  MemoryBackend,
  VirtioBlkDevice,
  defaultSerial,
} from '../src/index.js';
import { bytesEqual, headerBytes, segmentBytes } from './helpers.js';
import { type BufSpec, VirtioTestDriver } from '@hype/virtio/testing';

const MiB = 1 << 20;
const has = (f: bigint, bit: number) => (f & featureMask(bit)) !== 0n;

function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (i * 13 + seed * 101 + (i >> 8)) & 0xff;
  return out;
}

/** A backend whose reads/writes wait until the test releases them (to force completion order). */
class GatedBackend implements BlockBackend {
  readonly inner: MemoryBackend;
  readonly gates: Array<{ op: string; offset: number; release: () => void }> = [];
  constructor(size: number) {
    this.inner = new MemoryBackend(size);
  }
  get size() {
    return this.inner.size;
  }
  readonly readOnly = false;
  private gate(op: string, offset: number): Promise<void> {
    return new Promise((release) => this.gates.push({ op, offset, release }));
  }
  async read(offset: number, dest: readonly Uint8Array[]) {
    await this.gate('read', offset);
    await this.inner.read(offset, dest);
  }
  async write(offset: number, src: readonly Uint8Array[]) {
    await this.gate('write', offset);
    await this.inner.write(offset, src);
  }
  async flush() {
    await this.gate('flush', 0);
  }
  async close() {}
}

/** Builds a Linux-style request in driver RAM: header, optional data, status (0xff until written). */
function request(drv: VirtioTestDriver, type: number, sector: number | bigint, data?: { len: number; writable: boolean; fill?: Uint8Array }) {
  const hdr = drv.alloc(16, headerBytes(type, sector));
  const bufs: BufSpec[] = [{ addr: hdr, len: 16, writable: false }];
  let dataAddr = -1;
  if (data) {
    dataAddr = drv.alloc(data.len, data.fill ?? 0xee);
    bufs.push({ addr: dataAddr, len: data.len, writable: data.writable });
  }
  const status = drv.alloc(1, 0xff);
  bufs.push({ addr: status, len: 1, writable: true });
  return { bufs, dataAddr, statusAddr: status };
}

describe('virtio-blk device: features and config space through virtio-mmio', () => {
  it('offers id 2, the blk features, VERSION_1 and the ring features; RO only when read-only', () => {
    const rw = new VirtioTestDriver(new VirtioBlkDevice({ backend: new MemoryBackend(MiB) }));
    expect(rw.reg(MmioReg.DEVICE_ID)).toBe(2);
    const f = rw.offeredFeatures();
    for (const bit of [BlkFeature.SIZE_MAX, BlkFeature.SEG_MAX, BlkFeature.BLK_SIZE, BlkFeature.FLUSH, BlkFeature.DISCARD, BlkFeature.WRITE_ZEROES]) {
      expect([bit, has(f, bit)]).toEqual([bit, true]);
    }
    expect(has(f, BlkFeature.RO)).toBe(false);
    expect(has(f, Feature.VERSION_1)).toBe(true);
    expect(has(f, Feature.RING_INDIRECT_DESC)).toBe(true);
    expect(has(f, Feature.RING_EVENT_IDX)).toBe(true);

    const ro = new VirtioTestDriver(new VirtioBlkDevice({ backend: new MemoryBackend(MiB, { readOnly: true }) }));
    const g = ro.offeredFeatures();
    expect(has(g, BlkFeature.RO)).toBe(true);
    expect(has(g, BlkFeature.DISCARD)).toBe(false);
    expect(has(g, BlkFeature.WRITE_ZEROES)).toBe(false);
    expect(has(g, BlkFeature.FLUSH)).toBe(true);
  });

  it('config space: capacity, limits and discard/write-zeroes fields at the virtio_blk_config offsets', () => {
    const dev = new VirtioBlkDevice({ backend: new MemoryBackend(3 * MiB + 1000), queueSize: 128, limits: { maxDiscardSeg: 7 } });
    const drv = new VirtioTestDriver(dev);
    expect(drv.configU64(BLK_CONFIG.capacity)).toBe(BigInt(Math.floor((3 * MiB + 1000) / 512)));
    expect(drv.configU32(BLK_CONFIG.sizeMax)).toBe(MiB);
    expect(drv.configU32(BLK_CONFIG.segMax)).toBe(126);
    expect(drv.configU32(BLK_CONFIG.blkSize)).toBe(512);
    expect(drv.configU32(BLK_CONFIG.maxDiscardSectors)).toBe(dev.limits.maxDiscardSectors);
    expect(drv.configU32(BLK_CONFIG.maxDiscardSeg)).toBe(7);
    expect(drv.configU32(BLK_CONFIG.discardSectorAlignment)).toBe(1);
    expect(drv.configU32(BLK_CONFIG.maxWriteZeroesSectors)).toBe(dev.limits.maxWriteZeroesSectors);
    expect(drv.configU32(BLK_CONFIG.maxWriteZeroesSeg)).toBe(dev.limits.maxWriteZeroesSeg);
    expect(drv.configU8(BLK_CONFIG.writeZeroesMayUnmap)).toBe(0);
    expect(drv.configU16(BLK_CONFIG.numQueues)).toBe(0);
    expect(drv.reg(MmioReg.QUEUE_NUM_MAX)).toBe(128);
    expect(drv.warnings.some((w) => w.includes('not a multiple of 512'))).toBe(true);
  });

  it('config writes are ignored (no CONFIG_WCE) and logged', () => {
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend: new MemoryBackend(MiB) }));
    drv.transport.write(MmioReg.CONFIG + BLK_CONFIG.capacity, 4, 0x1234);
    expect(drv.configU64(BLK_CONFIG.capacity)).toBe(BigInt(MiB / 512));
    expect(drv.warnings.some((w) => w.includes('read-only config'))).toBe(true);
  });

  it('rejects bad options with a one-line error', () => {
    const backend = new MemoryBackend(MiB);
    expect(() => new VirtioBlkDevice({ backend, serial: 'x'.repeat(21) })).toThrow(/serial .* maximum is 20/);
    expect(() => new VirtioBlkDevice({ backend, serial: 'bad\nserial' })).toThrow(/not printable ASCII/);
    expect(() => new VirtioBlkDevice({ backend, queueSize: 100 })).toThrow(/queueSize 100/);
    expect(() => new VirtioBlkDevice({ backend, limits: { sizeMax: 100 } })).toThrow(/sizeMax=100/);
  });
});

describe('virtio-blk device: requests through the queue', () => {
  it('write then read back; used lengths and interrupts', async () => {
    const backend = new MemoryBackend(MiB);
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }));
    drv.init();
    const data = pattern(4096, 1);
    const w = request(drv, T.OUT, 8, { len: 4096, writable: false, fill: data });
    const wHead = drv.submit(w.bufs);
    expect(await drv.waitUsed(1)).toEqual([{ id: wHead, len: 1 }]);
    expect(drv.ram[w.statusAddr]).toBe(S.OK);
    expect(backend.bytes.slice(8 * 512, 8 * 512 + 4096)).toEqual(data);

    const r = request(drv, T.IN, 8, { len: 4096, writable: true });
    const rHead = drv.submit(r.bufs);
    expect(await drv.waitUsed(1)).toEqual([{ id: rHead, len: 4097 }]);
    expect(drv.ram[r.statusAddr]).toBe(S.OK);
    expect(drv.bytes(r.dataAddr, 4096)).toEqual(data);
    expect(drv.interrupts).toBeGreaterThanOrEqual(2);
  });

  it('serves a request through an indirect descriptor table', async () => {
    const backend = new MemoryBackend(MiB, { contents: pattern(MiB, 5) });
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }));
    drv.init();
    const r = request(drv, T.IN, 100, { len: 1024, writable: true });
    const head = drv.submitIndirect(r.bufs);
    expect(await drv.waitUsed(1)).toEqual([{ id: head, len: 1025 }]);
    expect(drv.bytes(r.dataAddr, 1024)).toEqual(backend.bytes.slice(100 * 512, 101 * 512 + 512));
  });

  it('GET_ID returns each disk its own serial (several devices, one per disk)', async () => {
    const serials = [defaultSerial(0), defaultSerial(1)];
    for (const serial of serials) {
      const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend: new MemoryBackend(MiB), serial }));
      drv.init();
      const r = request(drv, T.GET_ID, 0, { len: 20, writable: true });
      drv.submit(r.bufs);
      expect((await drv.waitUsed(1))[0].len).toBe(21);
      expect(new TextDecoder().decode(drv.bytes(r.dataAddr, 20)).replace(/\0+$/, '')).toBe(serial);
    }
    expect(serials).toEqual(['hype-disk-0', 'hype-disk-1']);
  });

  it('completes requests out of order, each with its own status and used length', async () => {
    const backend = new GatedBackend(MiB);
    backend.inner.bytes.set(pattern(MiB, 3));
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }));
    drv.init();
    const a = request(drv, T.IN, 0, { len: 512, writable: true });
    const b = request(drv, T.IN, 1000, { len: 2048, writable: true });
    const c = request(drv, T.IN, 5000, { len: 512, writable: true }); // past capacity (2048 sectors)
    const ha = drv.submit(a.bufs);
    const hb = drv.submit(b.bufs);
    const hc = drv.submit(c.bufs);
    // c was refused at once; a and b wait at the backend.
    expect(drv.takeUsed()).toEqual([{ id: hc, len: 1 }]);
    expect(drv.ram[c.statusAddr]).toBe(S.IOERR);
    expect(backend.gates.map((g) => g.offset)).toEqual([0, 1000 * 512]);
    backend.gates[1].release();
    expect(await drv.waitUsed(1)).toEqual([{ id: hb, len: 2049 }]);
    expect(drv.ram[a.statusAddr]).toBe(0xff);
    expect(drv.ram[b.statusAddr]).toBe(S.OK);
    backend.gates[0].release();
    expect(await drv.waitUsed(1)).toEqual([{ id: ha, len: 513 }]);
    expect(drv.ram[a.statusAddr]).toBe(S.OK);
    expect(drv.bytes(b.dataAddr, 2048)).toEqual(backend.inner.bytes.slice(1000 * 512, 1004 * 512));
  });

  it('drops completions that land after a reset: no status byte, no used entry; drain() waits for them', async () => {
    const backend = new GatedBackend(MiB);
    const dev = new VirtioBlkDevice({ backend });
    const drv = new VirtioTestDriver(dev);
    drv.init();
    const w = request(drv, T.OUT, 0, { len: 512, writable: false, fill: pattern(512, 9) });
    drv.submit(w.bufs);
    expect(dev.inFlight).toBe(1);
    drv.reset();
    expect(drv.reg(MmioReg.STATUS)).toBe(0);
    let drained = false;
    const d = dev.drain().then(() => (drained = true));
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    backend.gates[0].release();
    await d;
    expect(dev.inFlight).toBe(0);
    expect(drv.ram[w.statusAddr]).toBe(0xff);
    expect(drv.queue().usedIdx).toBe(0);

    // The device works again after the driver re-initialises it.
    drv.init();
    const f = request(drv, T.FLUSH, 0);
    drv.submit(f.bufs);
    backend.gates[1].release();
    expect((await drv.waitUsed(1))[0].len).toBe(1);
    expect(drv.ram[f.statusAddr]).toBe(S.OK);
  });

  it('a malformed chain (buffer outside guest RAM) goes back with used length 0; the next request still works', async () => {
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend: new MemoryBackend(MiB) }), { ramSize: 2 * MiB });
    drv.init();
    const r = request(drv, T.IN, 0, { len: 512, writable: true });
    const bad = drv.submit([r.bufs[0], { addr: 8 * MiB, len: 512, writable: true }, r.bufs[2]]);
    expect(drv.takeUsed()).toEqual([{ id: bad, len: 0 }]);
    expect(drv.ram[r.statusAddr]).toBe(0xff);
    const good = drv.submit(r.bufs);
    expect(await drv.waitUsed(1)).toEqual([{ id: good, len: 513 }]);
  });

  it('a request without a status byte is returned with used length 0 and nothing written', async () => {
    const backend = new MemoryBackend(MiB);
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }));
    drv.init();
    const hdr = drv.alloc(16, headerBytes(T.OUT, 0));
    const data = drv.alloc(512, 0x55);
    const head = drv.submit([
      { addr: hdr, len: 16, writable: false },
      { addr: data, len: 512, writable: false },
    ]);
    expect(drv.takeUsed()).toEqual([{ id: head, len: 0 }]);
    expect(backend.bytes.slice(0, 512).every((b) => b === 0)).toBe(true);
  });

  it('WRITE_ZEROES and DISCARD through the queue', async () => {
    const backend = new MemoryBackend(MiB, { contents: pattern(MiB, 2) });
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }));
    drv.init();
    const segs = segmentBytes([{ sector: 4, numSectors: 4, flags: 1 }]);
    const wz = request(drv, T.WRITE_ZEROES, 0, { len: segs.length, writable: false, fill: segs });
    drv.submit(wz.bufs);
    expect((await drv.waitUsed(1))[0].len).toBe(1);
    expect(drv.ram[wz.statusAddr]).toBe(S.OK);
    expect(backend.bytes.slice(2048, 4096).every((b) => b === 0)).toBe(true);
    const dsegs = segmentBytes([{ sector: 0, numSectors: 1, flags: 1 }]);
    const dc = request(drv, T.DISCARD, 0, { len: dsegs.length, writable: false, fill: dsegs });
    drv.submit(dc.bufs);
    await drv.waitUsed(1);
    expect(drv.ram[dc.statusAddr]).toBe(S.UNSUPP);
  });

  it('a backend error becomes IOERR for that request only', async () => {
    const backend = new MemoryBackend(MiB);
    let fail = true;
    const read = backend.read.bind(backend);
    backend.read = async (o, d) => {
      if (fail) {
        fail = false;
        throw new Error('EIO from the host');
      }
      return read(o, d);
    };
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }));
    drv.init();
    const a = request(drv, T.IN, 0, { len: 512, writable: true });
    drv.submit(a.bufs);
    expect((await drv.waitUsed(1))[0].len).toBe(1);
    expect(drv.ram[a.statusAddr]).toBe(S.IOERR);
    expect(drv.warnings.some((w) => w.includes('EIO from the host'))).toBe(true);
    const b = request(drv, T.IN, 0, { len: 512, writable: true });
    drv.submit(b.bufs);
    expect((await drv.waitUsed(1))[0].len).toBe(513);
    expect(drv.ram[b.statusAddr]).toBe(S.OK);
  });

  it('works without EVENT_IDX and INDIRECT negotiated', async () => {
    const mask = ~(featureMask(Feature.RING_EVENT_IDX) | featureMask(Feature.RING_INDIRECT_DESC));
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend: new MemoryBackend(MiB) }), { acceptMask: mask });
    drv.init();
    expect(drv.reg(MmioReg.STATUS) & Status.DRIVER_OK).toBe(Status.DRIVER_OK);
    const r = request(drv, T.IN, 0, { len: 512, writable: true });
    drv.submit(r.bufs);
    expect((await drv.waitUsed(1))[0].len).toBe(513);
  });

  it('hostile chains: no exception, no write outside the chain, every chain completed once', async () => {
    const SIZE = 256 * 1024;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            type: fc.constantFrom(T.IN, T.OUT, T.FLUSH, T.GET_ID, T.DISCARD, T.WRITE_ZEROES, 2, 0xffff_ffff),
            sector: fc.oneof(fc.bigInt({ min: 0n, max: 600n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
            bufs: fc.array(fc.record({ len: fc.oneof(fc.integer({ min: 0, max: 2048 }), fc.constantFrom(1, 16, 512, 513)), writable: fc.boolean() }), {
              minLength: 0,
              maxLength: 5,
            }),
            headerWritable: fc.boolean(),
            segs: fc.array(fc.record({ sector: fc.bigInt({ min: 0n, max: 700n }), numSectors: fc.integer({ min: 0, max: 200 }), flags: fc.constantFrom(0, 1, 2) }), {
              maxLength: 3,
            }),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        async (reqs) => {
          const backend = new MemoryBackend(SIZE);
          const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend }), { ramSize: MiB, queueSize: 64 });
          drv.init();
          const heads: number[] = [];
          const writable: Array<[number, number]> = [];
          for (const r of reqs) {
            const seg = segmentBytes(r.segs.map((s) => ({ sector: s.sector, numSectors: s.numSectors, flags: s.flags })));
            const hdr = drv.alloc(16 + seg.length, new Uint8Array([...headerBytes(r.type, r.sector), ...seg]));
            const bufs: BufSpec[] = [{ addr: hdr, len: 16 + seg.length, writable: r.headerWritable }];
            for (const b of r.bufs) bufs.push({ addr: drv.alloc(b.len, 0xee), len: b.len, writable: b.writable });
            for (const b of bufs) if (b.writable) writable.push([b.addr, b.len]);
            heads.push(drv.submit(bufs, { notify: false }));
          }
          const before = drv.ram.slice();
          drv.notify();
          const used = await drv.waitUsed(reqs.length);
          expect(used.map((u) => u.id).sort((x, y) => x - y)).toEqual([...heads].sort((x, y) => x - y));
          // The device may only have written the used ring and device-writable buffers.
          const after = drv.ram.slice();
          const { usedAddr, availAddr, size } = drv.queue().layout;
          after.set(before.subarray(usedAddr, usedAddr + 4096), usedAddr);
          const usedEvent = availAddr + 4 + 2 * size;
          after.set(before.subarray(usedEvent, usedEvent + 2), usedEvent);
          for (const [addr, len] of writable) after.set(before.subarray(addr, addr + len), addr);
          expect(bytesEqual(after, before)).toBe(true);
          expect(drv.reg(MmioReg.STATUS) & Status.DEVICE_NEEDS_RESET).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
});
