#!/usr/bin/env node
// virtio-blk device model vs plain positional file I/O, in one run, on the same file.
//
// A fake driver builds real descriptor chains in a Uint8Array "guest RAM", publishes them on a split
// virtqueue and notifies through the real virtio-mmio transport; the real VirtioBlkDevice + FileBackend
// serve them (readv/writev straight into/out of guest memory) and complete them on the used ring. The
// baseline does FileHandle.read/write at the same offsets, with the same number of requests in flight.
//
// Usage: pnpm build && node bench/blk.mjs (or `pnpm bench blk`); prints a table, then its BENCH-RESULT line.
// Env: HYPE_BENCH_BLK_MIB (file size, default 256), HYPE_BENCH_BLK_SECONDS (per cell, default 1),
//      HYPE_BENCH_BLK_QD (comma list of queue depths, default "1,32"), HYPE_BENCH_BLK_SLICES (alternating
//      measurement slices per cell, default 6), HYPE_BENCH_DIR (temp dir).

import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emitResult, row } from './lib/result.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const blk = await import(join(root, 'packages/virtio-blk/dist/index.js'));
const blkNode = await import(join(root, 'packages/virtio-blk/dist/node.js'));
const virtio = await import(join(root, 'packages/virtio/dist/index.js'));
const { VirtioBlkDevice, BlkRequestType, BlkStatus, REQUEST_HEADER } = blk;
const { MmioTransport, ArrayGuestMemory, MmioReg, Status, Desc, Avail, Used } = virtio;

const FILE_MIB = Number(process.env.HYPE_BENCH_BLK_MIB ?? 256);
const SECONDS = Number(process.env.HYPE_BENCH_BLK_SECONDS ?? 1);
const DEPTHS = (process.env.HYPE_BENCH_BLK_QD ?? '1,32').split(',').map(Number);
const SLICES = Number(process.env.HYPE_BENCH_BLK_SLICES ?? 6);
const FILE_SIZE = FILE_MIB << 20;
const QUEUE_SIZE = 256;
const MAX_DEPTH = Math.floor(QUEUE_SIZE / 3);
for (const d of DEPTHS) if (!(d >= 1 && d <= MAX_DEPTH)) throw new Error(`HYPE_BENCH_BLK_QD: depth ${d} must be in [1, ${MAX_DEPTH}]`);

/** Deterministic offsets (xorshift), aligned to the request size. */
function offsets(size, seed) {
  let x = seed >>> 0 || 1;
  const slots = Math.floor(FILE_SIZE / size);
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x % slots) * size;
  };
}

/** The driver side of one virtio-blk device: guest RAM, one queue, `depth` request slots. */
class FakeDriver {
  constructor(backend, depth, size) {
    this.depth = depth;
    this.size = size;
    const descAddr = 0x1000;
    const availAddr = descAddr + Desc.SIZE * QUEUE_SIZE;
    const usedAddr = (availAddr + Avail.size(QUEUE_SIZE) + 4095) & ~4095;
    let heap = (usedAddr + Used.size(QUEUE_SIZE) + 4095) & ~4095;
    this.ram = new Uint8Array(heap + depth * (size + 4096) + 4096);
    this.dv = new DataView(this.ram.buffer);
    this.layout = { descAddr, availAddr, usedAddr };
    this.device = new VirtioBlkDevice({ backend, queueSize: QUEUE_SIZE, serial: 'bench' });
    this.onInterrupt = () => {};
    this.transport = new MmioTransport(this.device, {
      memory: new ArrayGuestMemory(this.ram),
      interrupt: (asserted) => {
        if (asserted) this.onInterrupt();
      },
      log: { warn: (m) => console.warn(`[virtio] ${m}`) },
    });
    this.init();
    // Slot i: descriptors 3i (header), 3i+1 (data), 3i+2 (status); its buffers in guest RAM.
    this.slots = [];
    for (let i = 0; i < depth; i++) {
      const header = heap;
      const status = heap + 16;
      const data = (heap + 4096) & ~4095;
      heap = data + size;
      this.slots.push({ header, data, status });
      this.setDesc(3 * i, header, 16, 1, 3 * i + 1);
      this.setDesc(3 * i + 2, status, 1, 2, 0);
    }
    this.availIdx = 0;
    this.lastUsed = 0;
  }

  reg(off, value) {
    this.transport.write(off, 4, value);
  }

  init() {
    const t = this.transport;
    this.reg(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    for (const sel of [0, 1]) {
      this.reg(MmioReg.DEVICE_FEATURES_SEL, sel);
      const offered = t.read(MmioReg.DEVICE_FEATURES, 4);
      this.reg(MmioReg.DRIVER_FEATURES_SEL, sel);
      this.reg(MmioReg.DRIVER_FEATURES, offered);
    }
    this.reg(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    if ((t.read(MmioReg.STATUS, 4) & Status.FEATURES_OK) === 0) throw new Error('FEATURES_OK refused');
    this.reg(MmioReg.QUEUE_SEL, 0);
    this.reg(MmioReg.QUEUE_NUM, QUEUE_SIZE);
    this.reg(MmioReg.QUEUE_DESC_LOW, this.layout.descAddr);
    this.reg(MmioReg.QUEUE_DRIVER_LOW, this.layout.availAddr);
    this.reg(MmioReg.QUEUE_DEVICE_LOW, this.layout.usedAddr);
    this.reg(MmioReg.QUEUE_READY, 1);
    this.reg(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    if (!this.transport.isActive) throw new Error('device did not activate');
  }

  setDesc(i, addr, len, flags, next) {
    const b = this.layout.descAddr + i * Desc.SIZE;
    this.dv.setBigUint64(b + Desc.ADDR, BigInt(addr), true);
    this.dv.setUint32(b + Desc.LEN, len, true);
    this.dv.setUint16(b + Desc.FLAGS, flags, true);
    this.dv.setUint16(b + Desc.NEXT, next, true);
  }

  /** Fill slot i with a request and make it available (no notify). */
  queue(i, write, offset) {
    const s = this.slots[i];
    this.dv.setUint32(s.header + REQUEST_HEADER.type, write ? BlkRequestType.OUT : BlkRequestType.IN, true);
    this.dv.setBigUint64(s.header + REQUEST_HEADER.sector, BigInt(offset / 512), true);
    this.ram[s.status] = 0xff;
    // data descriptor: device-writable for IN
    this.setDesc(3 * i + 1, s.data, this.size, 1 | (write ? 0 : 2), 3 * i + 2);
    const a = this.layout.availAddr;
    this.dv.setUint16(a + Avail.RING + 2 * (this.availIdx % QUEUE_SIZE), 3 * i, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(a + Avail.IDX, this.availIdx, true);
  }

  notify() {
    this.reg(MmioReg.QUEUE_NOTIFY, 0);
  }

  /** Completed slot indices since the last call; re-arms used_event like Linux (EVENT_IDX). */
  reap() {
    const out = [];
    const u = this.layout.usedAddr;
    const idx = this.dv.getUint16(u + Used.IDX, true);
    while (this.lastUsed !== idx) {
      const e = u + Used.RING + Used.ELEM_SIZE * (this.lastUsed % QUEUE_SIZE);
      const head = this.dv.getUint32(e + Used.ELEM_ID, true);
      const slot = head / 3;
      const status = this.ram[this.slots[slot].status];
      if (status !== BlkStatus.OK) throw new Error(`request in slot ${slot} failed with status ${status}`);
      out.push(slot);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    this.dv.setUint16(this.layout.availAddr + Avail.usedEventOffset(QUEUE_SIZE), this.lastUsed, true);
    return out;
  }
}

/** Runs `depth` requests in flight through the device for `seconds`; returns { ops, seconds }. */
function runDevice(backend, write, size, depth, seed, seconds = SECONDS) {
  const drv = new FakeDriver(backend, depth, size);
  const next = offsets(size, seed);
  for (const s of drv.slots) if (s.data) drv.ram.fill(0x5a, s.data, s.data + size);
  return new Promise((resolve, reject) => {
    let ops = 0;
    let inFlight = 0;
    let stopping = false;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(seconds * 1e9));
    let scheduled = false;
    const service = () => {
      scheduled = false;
      try {
        const done = drv.reap();
        ops += done.length;
        inFlight -= done.length;
        if (!stopping && process.hrtime.bigint() >= deadline) stopping = true;
        if (!stopping) {
          for (const slot of done) {
            drv.queue(slot, write, next());
            inFlight++;
          }
          if (done.length > 0) drv.notify();
        }
        if (stopping && inFlight === 0) {
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          drv.device.drain().then(() => resolve({ ops, seconds }));
        }
      } catch (e) {
        reject(e);
      }
    };
    drv.onInterrupt = () => {
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(service);
      }
    };
    for (let i = 0; i < depth; i++) {
      drv.queue(i, write, next());
      inFlight++;
    }
    drv.notify();
  });
}

/** The same workload with FileHandle.read/write at a position. */
async function runPlain(fh, write, size, depth, seed, seconds = SECONDS) {
  const next = offsets(size, seed);
  const bufs = Array.from({ length: depth }, () => Buffer.alloc(size, 0x5a));
  let ops = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  await Promise.all(
    bufs.map(async (buf) => {
      while (process.hrtime.bigint() < deadline) {
        const pos = next();
        const r = write ? await fh.write(buf, 0, size, pos) : await fh.read(buf, 0, size, pos);
        const n = write ? r.bytesWritten : r.bytesRead;
        if (n !== size) throw new Error(`short ${write ? 'write' : 'read'}: ${n} of ${size}`);
        ops++;
      }
    }),
  );
  return { ops, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

function add(total, r) {
  total.ops += r.ops;
  total.seconds += r.seconds;
}

async function makeFile(path) {
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(4 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + (i >> 12)) & 0xff;
  for (let off = 0; off < FILE_SIZE; off += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, FILE_SIZE - off), off);
  await fh.close();
}

const dir = mkdtempSync(join(process.env.HYPE_BENCH_DIR ?? tmpdir(), 'hype-bench-blk-'));
const file = join(dir, 'disk.img');
try {
  await makeFile(file);
  const backend = await blkNode.openFileBackend(file);
  const fh = await open(file, 'r+');
  const results = [];
  for (const depth of DEPTHS) {
    for (const [op, write] of [
      ['read', false],
      ['write', true],
    ]) {
      for (const size of [4096, 65536]) {
        const seed = size * 7 + depth + (write ? 1 : 0);
        // Warm up both paths (JIT, page cache), then measure them in alternating slices so that load
        // from other processes on the machine falls on both sides alike.
        await runPlain(fh, write, size, depth, seed, SECONDS / 4);
        await runDevice(backend, write, size, depth, seed, SECONDS / 4);
        const plain = { ops: 0, seconds: 0 };
        const dev = { ops: 0, seconds: 0 };
        for (let i = 0; i < SLICES; i++) {
          const sides = [
            async () => add(plain, await runPlain(fh, write, size, depth, seed + i, SECONDS / SLICES)),
            async () => add(dev, await runDevice(backend, write, size, depth, seed + i, SECONDS / SLICES)),
          ];
          if (i % 2 === 1) sides.reverse();
          for (const side of sides) await side();
        }
        const row = {
          op,
          sizeKiB: size / 1024,
          queueDepth: depth,
          device: { mbPerS: (dev.ops * size) / dev.seconds / 1e6, reqPerS: dev.ops / dev.seconds, ops: dev.ops },
          plain: { mbPerS: (plain.ops * size) / plain.seconds / 1e6, reqPerS: plain.ops / plain.seconds, ops: plain.ops },
        };
        row.ratio = row.device.reqPerS / row.plain.reqPerS;
        results.push(row);
      }
    }
  }
  await fh.close();
  await backend.close();

  const f = (n, d = 1) => n.toFixed(d).padStart(9);
  console.log(`virtio-blk device model vs FileHandle.read/write, ${FILE_MIB} MiB file, ${SECONDS}s per cell, node ${process.version}`);
  console.log('op      size  QD   device MB/s  device req/s   plain MB/s  plain req/s  device/plain');
  for (const r of results) {
    console.log(
      `${r.op.padEnd(6)} ${String(r.sizeKiB).padStart(3)}KiB ${String(r.queueDepth).padStart(3)}  ${f(r.device.mbPerS)}    ${f(r.device.reqPerS, 0)}    ${f(r.plain.mbPerS)}    ${f(r.plain.reqPerS, 0)}     ${r.ratio.toFixed(2)}`,
    );
  }
  // The one result line bench/run.mjs reads (bench/README.md).
  emitResult({
    bench: 'blk',
    title: 'virtio-blk device model vs FileHandle.read/write (no guest)',
    status: 'ok',
    rows: results.map((r) =>
      row(`${r.op} ${r.sizeKiB} KiB QD${r.queueDepth}`, r.device.mbPerS, 'MB/s', 'higher', { name: `FileHandle.${r.op}`, value: r.plain.mbPerS }, `${Math.round(r.device.reqPerS)} vs ${Math.round(r.plain.reqPerS)} req/s`),
    ),
    data: { fileMiB: FILE_MIB, secondsPerCell: SECONDS, slices: SLICES, node: process.version, results },
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
