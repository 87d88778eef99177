/**
 * A hostile guest against virtio-blk behind the real virtio-mmio transport: the resource limits hold
 * (chains in flight, work per turn of the event loop, seg_max and indirect tables, host memory), and a
 * reset means no request from before it touches guest memory afterwards.
 */
import { Desc, MmioReg, Status } from '@hype/virtio';
import { VirtioTestDriver } from '@hype/virtio/testing';
import { describe, expect, it } from 'vitest';
import { BlkRequestType as T, BlkStatus as S, MemoryBackend, REQUESTS_PER_TURN, VirtioBlkDevice } from '../src/index.js';
import { headerBytes } from './helpers.js';

const SECTOR = 512;

/** A backend whose reads wait until released, to hold requests in flight. */
class SlowBackend extends MemoryBackend {
  private waiting: (() => void)[] = [];
  override async read(offset: number, dest: readonly Uint8Array[]): Promise<void> {
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    return super.read(offset, dest);
  }
  get pendingReads(): number {
    return this.waiting.length;
  }
  releaseAll(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

function diskWithPattern(size = 1 << 20): MemoryBackend {
  const backend = new MemoryBackend(size);
  backend.bytes.fill(0xab);
  return backend;
}

/** Longest gap between event-loop turns while `work` runs (a setImmediate ticker measures it). */
async function longestBlockMs(work: () => Promise<void>): Promise<number> {
  let longest = 0;
  let last = performance.now();
  let running = true;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    await work();
  } finally {
    running = false;
  }
  return longest;
}

describe('virtio-blk under a hostile guest', () => {
  it('a head re-posted while in flight breaks the queue instead of piling up requests', async () => {
    const backend = new SlowBackend(1 << 20);
    const device = new VirtioBlkDevice({ backend, queueSize: 64 });
    const d = new VirtioTestDriver(device, { queueSize: 64 });
    d.init();
    const hdr = d.alloc(16, headerBytes(T.IN, 0));
    const data = d.alloc(SECTOR);
    const status = d.alloc(1, 0xff);
    const head = d.submit([{ addr: hdr, len: 16, writable: false }, { addr: data, len: SECTOR, writable: true }, { addr: status, len: 1, writable: true }], { notify: false });
    // The guest re-posts the same head 10,000 times (avail.idx is a u16; stay within one queue size per step).
    for (let i = 0; i < 10_000; i++) {
      const slot = (1 + i) % d.queue().size;
      d.queue().setAvailRing(slot, head);
      d.queue().setAvailIdx((1 + i + 1) & 0xffff);
      if (i % 32 === 0) d.notify();
    }
    d.notify();
    expect(device.inFlight).toBe(1);
    expect(backend.pendingReads).toBe(1);
    expect(d.reg(MmioReg.STATUS) & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
    expect(d.warnings.join('\n')).toContain('still in flight');
    backend.releaseAll();
    await device.drain();
  });

  it('work per notify is bounded: a full queue is served over several turns of the event loop', async () => {
    const backend = new SlowBackend(1 << 20);
    const device = new VirtioBlkDevice({ backend, queueSize: 256 });
    const d = new VirtioTestDriver(device, { queueSize: 256, ramSize: 8 << 20 });
    d.init();
    for (let i = 0; i < 85; i++) {
      const hdr = d.alloc(16, headerBytes(T.IN, i));
      d.submit([{ addr: hdr, len: 16, writable: false }, { addr: d.alloc(SECTOR), len: SECTOR, writable: true }, { addr: d.alloc(1, 0xff), len: 1, writable: true }], { notify: false });
    }
    d.notify();
    expect(backend.pendingReads).toBe(REQUESTS_PER_TURN);
    await new Promise((r) => setTimeout(r, 5));
    expect(backend.pendingReads).toBe(85);
    backend.releaseAll();
    expect(await d.waitUsed(85)).toHaveLength(85);
  });

  it('a read in flight across a reset does not land in guest memory after the reset', async () => {
    const backend = new SlowBackend(1 << 20);
    backend.bytes.fill(0xab);
    const device = new VirtioBlkDevice({ backend });
    const d = new VirtioTestDriver(device);
    d.init();
    const hdr = d.alloc(16, headerBytes(T.IN, 0));
    const data = d.alloc(SECTOR, 0x11);
    const status = d.alloc(1, 0xff);
    d.submit([{ addr: hdr, len: 16, writable: false }, { addr: data, len: SECTOR, writable: true }, { addr: status, len: 1, writable: true }]);
    expect(backend.pendingReads).toBe(1);
    d.reset();
    d.ram.fill(0x22, data, data + SECTOR); // the guest reuses the buffer
    backend.releaseAll();
    await device.drain();
    expect(d.bytes(data, SECTOR).every((b) => b === 0x22)).toBe(true);
    expect(d.bytes(status, 1)[0]).toBe(0xff);
  });

  it('a completed read is still delivered in full (through the bounce buffer, across several chunks)', async () => {
    const backend = diskWithPattern(4 << 20);
    for (let i = 0; i < backend.bytes.length; i++) backend.bytes[i] = (i * 7) & 0xff;
    const device = new VirtioBlkDevice({ backend });
    const d = new VirtioTestDriver(device, { ramSize: 8 << 20 });
    d.init();
    const len = 300 * 1024; // three bounce chunks, split over two guest buffers
    const a = d.alloc(100 * 1024);
    const b = d.alloc(len - 100 * 1024);
    d.submit([
      { addr: d.alloc(16, headerBytes(T.IN, 2)), len: 16, writable: false },
      { addr: a, len: 100 * 1024, writable: true },
      { addr: b, len: len - 100 * 1024, writable: true },
      { addr: d.alloc(1, 0xff), len: 1, writable: true },
    ]);
    const [used] = await d.waitUsed(1);
    expect(used!.len).toBe(len + 1);
    const got = new Uint8Array([...d.bytes(a, 100 * 1024), ...d.bytes(b, len - 100 * 1024)]);
    expect(Buffer.from(got).equals(Buffer.from(backend.bytes.subarray(1024, 1024 + len)))).toBe(true);
  });

  it('indirect tables longer than a chain may be are refused at once, with bounded memory and event-loop time', async () => {
    const backend = diskWithPattern();
    const device = new VirtioBlkDevice({ backend });
    const d = new VirtioTestDriver(device, { ramSize: 16 << 20 });
    d.init();
    // One 1 MiB indirect table (65,536 entries of 1-byte readable buffers), shared by every chain.
    const entries = 65536;
    const table = d.alloc(entries * Desc.SIZE);
    const buf = d.alloc(1);
    const q = d.queue();
    for (let i = 0; i < entries; i++) q.setDesc(i, { addr: buf, len: 1, flags: i === entries - 1 ? 2 : 1, next: i + 1 }, table);
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const blocked = await longestBlockMs(async () => {
      for (let round = 0; round < 4; round++) {
        for (let slot = 0; slot < q.size; slot++) {
          q.setDesc(slot, { addr: table, len: entries * Desc.SIZE, flags: 4 });
          q.setAvailRing(slot, slot);
        }
        const idx = (round + 1) * q.size;
        q.setAvailIdx(idx & 0xffff);
        d.notify();
        await d.waitUsed(q.size);
      }
    });
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(blocked).toBeLessThan(50);
    expect(heapGrowth).toBeLessThan(64 << 20);
    expect(d.warnings.join('\n')).toContain('indirect table of 65536 entries');
    expect(d.reg(MmioReg.STATUS) & Status.DEVICE_NEEDS_RESET).toBe(0);
  });

  it('the status byte after a refused oversized request says IOERR (seg_max enforced through the transport)', async () => {
    const backend = diskWithPattern();
    const device = new VirtioBlkDevice({ backend, queueSize: 64, limits: { segMax: 4 } });
    const d = new VirtioTestDriver(device, { queueSize: 64 });
    d.init();
    expect(d.configU32(12)).toBe(4); // seg_max as advertised
    const status = d.alloc(1, 0xff);
    const bufs = [{ addr: d.alloc(16, headerBytes(T.IN, 0)), len: 16, writable: false }];
    for (let i = 0; i < 5; i++) bufs.push({ addr: d.alloc(SECTOR), len: SECTOR, writable: true });
    bufs.push({ addr: status, len: 1, writable: true });
    d.submit(bufs);
    const [used] = await d.waitUsed(1);
    expect(used!.len).toBe(1);
    expect(d.bytes(status, 1)[0]).toBe(S.IOERR);
  });
});
