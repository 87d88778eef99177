import { describe, expect, it } from 'vitest';
import { ChainReader, ChainWriter, type DescriptorChain, type InvalidChain } from '../src/chain.js';
import type { ChainErrorKind } from '../src/errors.js';
import { DescFlag } from '../src/ring-layout.js';
import { DATA, makeQueue } from './setup.js';

const { NEXT, WRITE, INDIRECT } = DescFlag;
const INDIRECT_TABLE = 0x4000;

function popValid(f: ReturnType<typeof makeQueue>): DescriptorChain {
  const popped = f.queue.pop();
  if (popped === null || popped.kind !== 'chain') throw new Error(`expected a valid chain, got ${JSON.stringify(popped)}`);
  return popped;
}

function popInvalid(f: ReturnType<typeof makeQueue>, kind: ChainErrorKind): InvalidChain {
  const popped = f.queue.pop();
  expect(popped?.kind).toBe('invalid');
  const invalid = popped as InvalidChain;
  expect(invalid.error.kind).toBe(kind);
  expect(invalid.error.message).toMatch(/virtio queue 0: invalid chain at head \d+/);
  return invalid;
}

describe('descriptor chains: valid shapes', () => {
  it('reads a direct chain: readable then writable, lengths and buffers', () => {
    const f = makeQueue();
    f.driver.setChain(3, [
      { addr: DATA, len: 16 },
      { addr: DATA + 0x100, len: 4 },
      { addr: DATA + 0x200, len: 512, flags: WRITE },
      { addr: DATA + 0x400, len: 1, flags: WRITE },
    ]);
    f.driver.publish(3);
    const chain = popValid(f);
    expect(chain.head).toBe(3);
    expect(chain.readableLength).toBe(20);
    expect(chain.writableLength).toBe(513);
    expect(chain.buffers).toEqual([
      { addr: DATA, len: 16, writable: false },
      { addr: DATA + 0x100, len: 4, writable: false },
      { addr: DATA + 0x200, len: 512, writable: true },
      { addr: DATA + 0x400, len: 1, writable: true },
    ]);
    expect(chain.readableViews().map((v) => v.length)).toEqual([16, 4]);
    expect(chain.writableViews().map((v) => v.length)).toEqual([512, 1]);
  });

  it('gathers readable bytes across buffers and scatters writable ones, with live views', () => {
    const f = makeQueue();
    f.ram.set([1, 2, 3], DATA);
    f.ram.set([4, 5], DATA + 0x10);
    f.driver.setChain(0, [
      { addr: DATA, len: 3 },
      { addr: DATA + 0x10, len: 2 },
      { addr: DATA + 0x20, len: 2, flags: WRITE },
      { addr: DATA + 0x30, len: 3, flags: WRITE },
    ]);
    f.driver.publish(0);
    const chain = popValid(f);
    const reader = chain.reader();
    const buf = new Uint8Array(4);
    expect(reader.read(buf)).toBe(4);
    expect([...buf]).toEqual([1, 2, 3, 4]);
    expect(reader.remaining).toBe(1);
    expect(reader.readExact(2)).toBeUndefined(); // not enough left: nothing consumed
    expect([...reader.readExact(1)!]).toEqual([5]);
    expect(reader.read(buf)).toBe(0);

    const writer = chain.writer();
    expect(writer.write(new Uint8Array([9, 8, 7]))).toBe(3);
    const views = writer.views(5);
    expect(views.map((v) => v.length)).toEqual([2]); // only 2 bytes were left
    views[0].set([6, 5]);
    expect(writer.written).toBe(5);
    expect(writer.write(new Uint8Array([1]))).toBe(0);
    expect([...f.ram.subarray(DATA + 0x20, DATA + 0x22)]).toEqual([9, 8]);
    expect([...f.ram.subarray(DATA + 0x30, DATA + 0x33)]).toEqual([7, 6, 5]);
  });

  it('follows an indirect table (and ignores WRITE on the descriptor that points to it)', () => {
    const f = makeQueue({ indirect: true });
    f.driver.setChain(0, [{ addr: DATA, len: 8 }, { addr: DATA + 0x100, len: 64, flags: WRITE }], INDIRECT_TABLE);
    f.driver.setDesc(5, { addr: INDIRECT_TABLE, len: 32, flags: INDIRECT | WRITE });
    f.driver.publish(5);
    const chain = popValid(f);
    expect(chain.head).toBe(5);
    expect(chain.buffers.map((b) => [b.addr, b.len, b.writable])).toEqual([
      [DATA, 8, false],
      [DATA + 0x100, 64, true],
    ]);
  });

  it('accepts direct descriptors followed by a final indirect one, and zero-length buffers', () => {
    const f = makeQueue();
    f.driver.setChain(0, [{ addr: DATA + 0x300, len: 0 }, { addr: DATA, len: 4, flags: WRITE }], INDIRECT_TABLE);
    f.driver.setDesc(1, { addr: DATA + 0x500, len: 2, flags: NEXT, next: 2 });
    f.driver.setDesc(2, { addr: INDIRECT_TABLE, len: 32, flags: INDIRECT });
    f.driver.publish(1);
    const chain = popValid(f);
    expect(chain.buffers.map((b) => b.len)).toEqual([2, 0, 4]);
    expect(chain.readableLength).toBe(2);
    expect(chain.writableLength).toBe(4);
  });

  it('allows a chain of exactly queue-size descriptors', () => {
    const f = makeQueue();
    f.driver.setChain(
      0,
      Array.from({ length: 16 }, (_, i) => ({ addr: DATA + i, len: 1 })),
    );
    f.driver.publish(0);
    expect(popValid(f).buffers).toHaveLength(16);
  });

  it('accepts a buffer that ends exactly at the end of RAM', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: f.ram.length - 8, len: 8, flags: WRITE });
    f.driver.publish(0);
    expect(popValid(f).writableLength).toBe(8);
  });
});

describe('descriptor chains: every malformed input is an error value', () => {
  it('next outside the table', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: NEXT, next: 16 });
    f.driver.publish(0);
    popInvalid(f, 'next-out-of-range');
  });

  it('a loop in the main table', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: NEXT, next: 1 });
    f.driver.setDesc(1, { addr: DATA, len: 1, flags: NEXT, next: 0 });
    f.driver.publish(0);
    popInvalid(f, 'loop');
  });

  it('a descriptor pointing to itself', () => {
    const f = makeQueue();
    f.driver.setDesc(7, { addr: DATA, len: 1, flags: NEXT, next: 7 });
    f.driver.publish(7);
    popInvalid(f, 'loop');
  });

  it('a loop inside an indirect table', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: NEXT, next: 1 }, INDIRECT_TABLE);
    f.driver.setDesc(1, { addr: DATA, len: 1, flags: NEXT, next: 0 }, INDIRECT_TABLE);
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 32, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'loop');
  });

  it('next outside an indirect table', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: NEXT, next: 2 }, INDIRECT_TABLE);
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 32, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'next-out-of-range');
  });

  it('indirect table length not a multiple of 16', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 24, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'indirect-bad-length');
  });

  it('indirect table length 0', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 0, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'indirect-bad-length');
  });

  it('nested indirect', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: INDIRECT_TABLE + 0x100, len: 16, flags: INDIRECT }, INDIRECT_TABLE);
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 16, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'nested-indirect');
  });

  it('indirect together with NEXT', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1 }, INDIRECT_TABLE);
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 16, flags: INDIRECT | NEXT, next: 1 });
    f.driver.setDesc(1, { addr: DATA, len: 1 });
    f.driver.publish(0);
    popInvalid(f, 'indirect-with-next');
  });

  it('indirect table of more than 65535 entries', () => {
    const f = makeQueue({ ramSize: 0x200000 });
    f.driver.setDesc(0, { addr: 0x10000, len: 65536 * 16, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'indirect-too-large');
  });

  it('indirect table outside guest RAM', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: f.ram.length - 16, len: 32, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'indirect-table-outside-memory');
  });

  it('INDIRECT when VIRTIO_F_INDIRECT_DESC was not negotiated', () => {
    const f = makeQueue({ indirect: false });
    f.driver.setDesc(0, { addr: DATA, len: 1 }, INDIRECT_TABLE);
    f.driver.setDesc(0, { addr: INDIRECT_TABLE, len: 16, flags: INDIRECT });
    f.driver.publish(0);
    popInvalid(f, 'indirect-not-negotiated');
  });

  it('chain total length above 4 GiB - 1', () => {
    const f = makeQueue();
    // The length check comes before the memory check of the descriptor that overflows the total.
    f.driver.setChain(4, [
      { addr: DATA, len: 0x100, flags: WRITE },
      { addr: DATA, len: 0xffff_ff00, flags: WRITE },
    ]);
    f.driver.publish(4);
    popInvalid(f, 'chain-too-long');
  });

  it('chain total length of exactly 4 GiB - 1 is not too long (fails only on memory here)', () => {
    const f = makeQueue();
    f.driver.setChain(0, [
      { addr: DATA, len: 0x100 },
      { addr: DATA, len: 0xffff_feff },
    ]);
    f.driver.publish(0);
    popInvalid(f, 'buffer-outside-memory');
  });

  it('buffer outside guest RAM (start, end straddling, and a 64-bit address)', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: f.ram.length, len: 1 });
    f.driver.setDesc(1, { addr: f.ram.length - 4, len: 8, flags: WRITE });
    f.driver.setDesc(2, { addr: 0xffff_ffff_ffff_f000n, len: 16 });
    f.driver.setDesc(3, { addr: 0x1_0000_0000n + BigInt(DATA), len: 16 });
    for (const head of [0, 1, 2, 3]) {
      f.driver.publish(head);
      const e = popInvalid(f, 'buffer-outside-memory');
      expect(e.head).toBe(head);
    }
  });

  it('unknown flags', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: 0x8 });
    f.driver.setDesc(1, { addr: DATA, len: 1, flags: 0x8000 | WRITE });
    f.driver.publish(0);
    popInvalid(f, 'unknown-flags');
    f.driver.publish(1);
    popInvalid(f, 'unknown-flags');
  });

  it('device-readable after device-writable', () => {
    const f = makeQueue();
    f.driver.setChain(0, [
      { addr: DATA, len: 4 },
      { addr: DATA + 0x10, len: 4, flags: WRITE },
      { addr: DATA + 0x20, len: 4 },
    ]);
    f.driver.publish(0);
    popInvalid(f, 'readable-after-writable');
  });

  it('device-readable after a zero-length device-writable one', () => {
    const f = makeQueue();
    f.driver.setChain(0, [
      { addr: DATA, len: 0, flags: WRITE },
      { addr: DATA + 0x20, len: 4 },
    ]);
    f.driver.publish(0);
    popInvalid(f, 'readable-after-writable');
  });

  it('a malformed chain is returned on the used ring with length 0 and does not stop the queue', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: 0x10 });
    f.driver.setDesc(1, { addr: DATA, len: 4, flags: WRITE });
    f.driver.publish(0);
    f.driver.publish(1);
    const chain = f.queue.popChain();
    expect(chain?.head).toBe(1);
    expect(f.driver.usedIdx).toBe(1);
    expect(f.driver.used(0)).toEqual({ id: 0, len: 0 });
    expect(f.warnings.some((w) => w.includes('flags 0x10'))).toBe(true);
    expect(f.queue.addUsed(chain!, 4)).toBe(true);
    expect(f.driver.used(1)).toEqual({ id: 1, len: 4 });
  });
});

describe('ChainReader / ChainWriter as cursors over any views', () => {
  it('cover the views\' total by default, and never more than it', () => {
    const a = new Uint8Array([1, 2, 3]);
    const b = new Uint8Array(0);
    const c = new Uint8Array([4, 5]);
    expect(new ChainReader([a, b, c]).remaining).toBe(5);
    expect(new ChainReader([a, b, c], 4).remaining).toBe(4);
    expect(new ChainReader([a, b, c], 99).remaining).toBe(5);
    const reader = new ChainReader([a, b, c], 4);
    expect([...reader.readExact(4)!]).toEqual([1, 2, 3, 4]);
    expect(reader.read(new Uint8Array(2))).toBe(0); // byte 5 is past the cursor's length
    expect(new ChainWriter([a, c], 99).write(new Uint8Array(9).fill(7))).toBe(5);
  });

  it('peekViews gives the next views without consuming them; skip then moves on (short vectored I/O)', () => {
    const ram = new Uint8Array(16);
    const views = [ram.subarray(0, 4), ram.subarray(4, 4), ram.subarray(8, 11), ram.subarray(12, 16)];
    const writer = new ChainWriter(views);
    expect(writer.remaining).toBe(11);
    const bounds = (vs: Uint8Array[]) => vs.map((v) => [v.byteOffset, v.length]);
    expect(bounds(writer.peekViews())).toEqual([[0, 4], [8, 3], [12, 4]]);
    expect(writer.written).toBe(0);
    expect(writer.remaining).toBe(11);
    // A transfer that stopped after 5 bytes: the rest starts inside the second non-empty view.
    expect(writer.skip(5)).toBe(5);
    expect(bounds(writer.peekViews())).toEqual([[9, 2], [12, 4]]);
    expect(bounds(writer.peekViews(3))).toEqual([[9, 2], [12, 1]]);
    expect(writer.peekViews(0)).toEqual([]);
    expect(writer.peekViews(-1)).toEqual([]);
    // The peeked views are live and are exactly what views() then hands out.
    writer.peekViews(1)[0][0] = 0xaa;
    expect(ram[9]).toBe(0xaa);
    expect(bounds(writer.views(6))).toEqual([[9, 2], [12, 4]]);
    expect(writer.written).toBe(11);
    expect(writer.peekViews()).toEqual([]);

    const reader = new ChainReader([ram.subarray(0, 2), ram.subarray(2, 6)], 5);
    expect(bounds(reader.peekViews())).toEqual([[0, 2], [2, 3]]); // stops at the cursor's length
    reader.skip(3);
    expect(bounds(reader.peekViews(10))).toEqual([[3, 2]]);
    expect(reader.consumed).toBe(3);
  });

  it('a chain writer never peeks into the device-readable buffers, nor a reader into the writable ones', () => {
    const f = makeQueue();
    f.driver.setChain(0, [
      { addr: DATA, len: 8 },
      { addr: DATA + 0x100, len: 4, flags: WRITE },
      { addr: DATA + 0x200, len: 2, flags: WRITE },
    ]);
    f.driver.publish(0);
    const chain = popValid(f);
    expect(chain.writer().peekViews(100).map((v) => [v.byteOffset, v.length])).toEqual([[DATA + 0x100, 4], [DATA + 0x200, 2]]);
    expect(chain.reader().peekViews(100).map((v) => [v.byteOffset, v.length])).toEqual([[DATA, 8]]);
  });
});
