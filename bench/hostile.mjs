#!/usr/bin/env node
// virtio-blk under a hostile guest model vs a well-behaved one, in one run: the longest event-loop block
// (a setImmediate ticker) and the peak heap growth while each model drives the real device through the
// real virtio-mmio transport (memory backend, 256-entry queue).
//   well-behaved: full queues of valid 4 KiB reads, completed and re-posted, ROUNDS times;
//   re-posting:   the guest makes the same head available again and again while it is in flight;
//   indirect:     every slot points at one 1 MiB indirect table (65,536 entries), ROUNDS times.
// The limits: no hostile model may block the event loop for more than 50 ms or grow the heap by
// more than 64 MiB; the ratios say how far each is from the well-behaved guest.
//
// Usage: pnpm build && node bench/hostile.mjs (or `pnpm bench hostile`).
// Env: HYPE_BENCH_HOSTILE_ROUNDS (default 40).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { intEnv } from './lib/env.mjs';
import { emitResult, row } from './lib/result.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const blk = await import(join(root, 'packages/virtio-blk/dist/index.js'));
const virtio = await import(join(root, 'packages/virtio/dist/index.js'));
const { VirtioBlkDevice, MemoryBackend, BlkRequestType, REQUEST_HEADER } = blk;
const { MmioTransport, ArrayGuestMemory, MmioReg, Status, Desc, Avail, Used } = virtio;

const ROUNDS = intEnv('HYPE_BENCH_HOSTILE_ROUNDS', 40, 1, 100_000);
const QUEUE_SIZE = 256;
const INDIRECT_ENTRIES = 65536;

/** A driver that owns one queue in a Uint8Array "guest RAM" and can write anything into it. */
class Guest {
  constructor() {
    this.ram = new Uint8Array(24 << 20);
    this.dv = new DataView(this.ram.buffer);
    this.desc = 0x1000;
    this.avail = this.desc + Desc.SIZE * QUEUE_SIZE;
    this.used = (this.avail + Avail.size(QUEUE_SIZE) + 4095) & ~4095;
    this.heap = (this.used + Used.size(QUEUE_SIZE) + 4095) & ~4095;
    this.availIdx = 0;
    this.device = new VirtioBlkDevice({ backend: new MemoryBackend(64 << 20), queueSize: QUEUE_SIZE });
    this.transport = new MmioTransport(this.device, { memory: new ArrayGuestMemory(this.ram), interrupt: () => {}, log: { warn: () => {} } });
    const w = (off, v) => this.transport.write(off, 4, v);
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    for (const sel of [0, 1]) {
      w(MmioReg.DEVICE_FEATURES_SEL, sel);
      const offered = this.transport.read(MmioReg.DEVICE_FEATURES, 4);
      w(MmioReg.DRIVER_FEATURES_SEL, sel);
      w(MmioReg.DRIVER_FEATURES, offered);
    }
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    w(MmioReg.QUEUE_SEL, 0);
    w(MmioReg.QUEUE_NUM, QUEUE_SIZE);
    w(MmioReg.QUEUE_DESC_LOW, this.desc);
    w(MmioReg.QUEUE_DRIVER_LOW, this.avail);
    w(MmioReg.QUEUE_DEVICE_LOW, this.used);
    w(MmioReg.QUEUE_READY, 1);
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  }
  alloc(len) {
    const at = this.heap;
    this.heap = (this.heap + len + 15) & ~15;
    return at;
  }
  setDesc(table, i, addr, len, flags, next) {
    const b = table + i * Desc.SIZE;
    this.dv.setBigUint64(b + Desc.ADDR, BigInt(addr), true);
    this.dv.setUint32(b + Desc.LEN, len, true);
    this.dv.setUint16(b + Desc.FLAGS, flags, true);
    this.dv.setUint16(b + Desc.NEXT, next, true);
  }
  publish(head) {
    this.dv.setUint16(this.avail + Avail.RING + 2 * (this.availIdx % QUEUE_SIZE), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(this.avail + Avail.IDX, this.availIdx, true);
  }
  notify() {
    this.transport.write(MmioReg.QUEUE_NOTIFY, 4, 0);
  }
  get usedIdx() {
    return this.dv.getUint16(this.used + Used.IDX, true);
  }
  async waitUsed(target) {
    for (let i = 0; i < 100_000 && ((target - this.usedIdx) & 0xffff) !== 0 && ((target - this.usedIdx) & 0xffff) < 0x8000; i++) {
      await new Promise((r) => setImmediate(r));
    }
  }
}

/** Runs `model` and measures the longest gap between event-loop turns and the peak heap growth. */
async function measure(model) {
  globalThis.gc?.();
  const heapStart = process.memoryUsage().heapUsed;
  let peak = heapStart;
  let longest = 0;
  let last = performance.now();
  let running = true;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const started = performance.now();
  await model();
  running = false;
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  return { blockMs: longest, heapMiB: Math.max(0, peak - heapStart) / 2 ** 20, seconds: (performance.now() - started) / 1000 };
}

async function wellBehaved() {
  const g = new Guest();
  const chains = QUEUE_SIZE / 3;
  for (let i = 0; i < chains; i++) {
    const header = g.alloc(16);
    g.dv.setUint32(header + REQUEST_HEADER.type, BlkRequestType.IN, true);
    g.dv.setBigUint64(header + REQUEST_HEADER.sector, BigInt(i * 8), true);
    g.setDesc(g.desc, 3 * i, header, 16, 1, 3 * i + 1);
    g.setDesc(g.desc, 3 * i + 1, g.alloc(4096), 4096, 1 | 2, 3 * i + 2);
    g.setDesc(g.desc, 3 * i + 2, g.alloc(1), 1, 2, 0);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < chains; i++) g.publish(3 * i);
    g.notify();
    await g.waitUsed(g.availIdx);
  }
}

async function reposting() {
  const g = new Guest();
  const header = g.alloc(16);
  g.dv.setUint32(header + REQUEST_HEADER.type, BlkRequestType.IN, true);
  g.setDesc(g.desc, 0, header, 16, 1, 1);
  g.setDesc(g.desc, 1, g.alloc(4096), 4096, 1 | 2, 2);
  g.setDesc(g.desc, 2, g.alloc(1), 1, 2, 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < QUEUE_SIZE; i++) g.publish(0); // head 0, again and again
    g.notify();
    await new Promise((r) => setImmediate(r));
  }
  await g.device.drain();
}

async function indirect() {
  const g = new Guest();
  const table = g.alloc(INDIRECT_ENTRIES * Desc.SIZE);
  const buf = g.alloc(1);
  for (let i = 0; i < INDIRECT_ENTRIES; i++) g.setDesc(table, i, buf, 1, i === INDIRECT_ENTRIES - 1 ? 2 : 1, i + 1);
  for (let round = 0; round < ROUNDS; round++) {
    for (let slot = 0; slot < QUEUE_SIZE; slot++) {
      g.setDesc(g.desc, slot, table, INDIRECT_ENTRIES * Desc.SIZE, 4, 0);
      g.publish(slot);
    }
    g.notify();
    await g.waitUsed(g.availIdx);
  }
}

const base = await measure(wellBehaved);
const models = { 're-posting heads in flight': await measure(reposting), '1 MiB indirect tables': await measure(indirect) };
const rows = [];
for (const [name, m] of Object.entries(models)) {
  rows.push(row(`${name}: longest event-loop block`, m.blockMs, 'ms', 'lower', { name: 'well-behaved guest', value: base.blockMs }, m.blockMs > 50 ? 'ABOVE the 50 ms limit' : 'limit 50 ms'));
  rows.push(row(`${name}: heap growth`, m.heapMiB, 'MiB', 'lower', { name: 'well-behaved guest', value: base.heapMiB }, m.heapMiB > 64 ? 'ABOVE the 64 MiB limit' : 'limit 64 MiB'));
}
for (const [name, m] of [['well-behaved guest', base], ...Object.entries(models)]) {
  console.log(`${name.padEnd(28)} longest block ${m.blockMs.toFixed(2).padStart(7)} ms   heap +${m.heapMiB.toFixed(1).padStart(6)} MiB   ${m.seconds.toFixed(2)} s`);
}
emitResult({ bench: 'hostile', title: 'virtio-blk under a hostile guest vs a well-behaved one (event loop, heap)', status: 'ok', rows, data: { rounds: ROUNDS, base, models } });
