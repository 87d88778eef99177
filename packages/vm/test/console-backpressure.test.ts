// Serial console output into a sink that stopped draining: the UART keeps THR full (LSR.THRE clear) so
// a driver waits, host memory stays bounded even for a guest that writes on regardless, and output
// resumes in order once the sink drains. The wiring is machine.ts's: UART -> ByteBatcher -> sink.
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { IER_THRI, IIR_THRI, LSR_TEMT, LSR_THRE, Uart8250, UartReg as R } from '../src/devices/uart8250.js';
import { ByteBatcher } from '../src/machine/console-io.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MiB = 1 << 20;
const turn = () => new Promise((r) => setImmediate(r));

/** JS heap plus ArrayBuffer backing stores, after a full GC. */
function heap(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A pipe whose reader stopped reading: a Writable that keeps what it is given and completes nothing until `drain()`. */
function stuckPipe() {
  const received: Buffer[] = [];
  let stuck = true;
  let pending: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: 1, // the first write already fills it
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk);
      if (stuck) pending = callback;
      else callback();
    },
  });
  return {
    stream,
    async drain() {
      stuck = false;
      pending?.();
      await turn();
    },
    get bytes() {
      return Buffer.concat(received);
    },
  };
}

/** UART, batcher and sink wired as createVm wires them for `console: 'serial'`. */
function serialConsole(options: { limit?: number } = {}) {
  const pipe = stuckPipe();
  const warnings: string[] = [];
  const irqs: boolean[] = [];
  const batcher = new ByteBatcher((bytes) => pipe.stream.write(bytes), {
    onReady: () => uart.transmitterReady(),
    warn: (m) => warnings.push(m),
    ...options,
  });
  pipe.stream.on('drain', () => batcher.sinkDrained());
  const uart = new Uart8250({ output: (byte) => batcher.push(byte), setIrq: (level) => irqs.push(level) });
  const data = new Uint8Array(1);
  const wr = (reg: number, value: number) => {
    data[0] = value;
    uart.write(reg, data);
  };
  const rd = (reg: number) => {
    uart.read(reg, data);
    return data[0];
  };
  return { pipe, batcher, uart, warnings, irqs, wr, rd };
}

const pattern = (i: number) => (i * 7 + (i >> 8)) & 0xff;

describe('UART transmitter backpressure', () => {
  it('output() returning false keeps THR full (no THRE, no THRE interrupt) until transmitterReady()', () => {
    const out: number[] = [];
    const irqs: boolean[] = [];
    let accept = true;
    const uart = new Uart8250({ output: (b) => (out.push(b), accept), setIrq: (l) => irqs.push(l) });
    const d = new Uint8Array(1);
    const rd = (reg: number) => (uart.read(reg, d), d[0]);
    const wr = (reg: number, v: number) => uart.write(reg, Uint8Array.of(v));
    wr(R.IER, IER_THRI);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_THRI);
    accept = false;
    wr(R.DATA, 0x41);
    expect(out).toEqual([0x41]); // taken: the host holds it
    expect(rd(R.LSR) & (LSR_THRE | LSR_TEMT)).toBe(0);
    expect(uart.irq).toBe(false);
    wr(R.IER, 0);
    wr(R.IER, IER_THRI); // re-enabling THRI does not fake an empty THR
    expect(uart.irq).toBe(false);
    accept = true;
    uart.transmitterReady();
    expect(rd(R.LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
    expect(uart.irq).toBe(true);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_THRI);
    uart.transmitterReady(); // not blocked: nothing to do
    expect(uart.irq).toBe(false);
  });

  it('a driver that waits for THRE stops while the sink is full and loses nothing after drain', async () => {
    const c = serialConsole();
    const total = 200_000;
    let next = 0;
    /** What Linux's interrupt-driven transmit does: up to 16 bytes per THRE, then wait for the next one. */
    const driverTurn = () => {
      for (let burst = 0; burst < 16 && next < total && c.rd(R.LSR) & LSR_THRE; burst++) c.wr(R.DATA, pattern(next++));
    };
    c.wr(R.IER, IER_THRI);
    for (let i = 0; i < 1000 && next < total; i++) {
      driverTurn();
      await turn();
    }
    // The sink filled at its first write: the driver was stopped, not dropped.
    expect(next).toBeLessThan(2000);
    expect(c.rd(R.LSR) & LSR_THRE).toBe(0);
    expect(c.batcher.dropped).toBe(0);
    const stoppedAt = next;
    for (let i = 0; i < 100; i++) {
      driverTurn();
      await turn();
    }
    expect(next).toBe(stoppedAt);
    await c.pipe.drain();
    expect(c.rd(R.LSR) & LSR_THRE).toBe(LSR_THRE);
    while (next < total) {
      driverTurn();
      await turn();
    }
    await turn();
    const expected = Buffer.from(Array.from({ length: total }, (_, i) => pattern(i)));
    expect(c.pipe.bytes.equals(expected)).toBe(true);
    expect(c.warnings).toEqual([]);
  });

  it('1M one-byte writes from a guest ignoring THRE keep host memory bounded; output resumes in order after drain', async () => {
    const c = serialConsole();
    c.wr(R.DATA, 0x3e);
    await turn(); // flushed: the sink reports full
    const before = heap();
    const n = 1 << 20;
    // One byte per event-loop turn: a flush per byte, the worst case for a sink that buffers every write.
    for (let i = 0; i < n; i++) {
      c.wr(R.DATA, pattern(i));
      await turn();
    }
    expect(heap() - before).toBeLessThan(16 * MiB);
    // Held: everything up to the 1 MiB limit (the 1 + n bytes fit but for the first, already sent).
    expect(c.batcher.pending + c.batcher.dropped).toBe(n);
    expect(c.batcher.pending).toBe(MiB);
    expect(c.rd(R.LSR) & LSR_THRE).toBe(0);
    await c.pipe.drain();
    const out = c.pipe.bytes;
    expect(out.length).toBe(1 + MiB);
    expect(out[0]).toBe(0x3e);
    for (let i = 0; i < MiB; i += 997) expect(out[1 + i]).toBe(pattern(i));
    expect(c.rd(R.LSR) & LSR_THRE).toBe(LSR_THRE);
    // Flowing again.
    c.wr(R.DATA, 0x21);
    await turn();
    expect(c.pipe.bytes.at(-1)).toBe(0x21);
  });

  it('past the limit, bytes are dropped with one warning and a count; the kept prefix comes out in order', async () => {
    const c = serialConsole({ limit: 64 });
    c.wr(R.DATA, 0x3e);
    await turn();
    for (let i = 0; i < 10_000; i++) {
      c.wr(R.DATA, pattern(i));
      if (i % 100 === 0) await turn();
    }
    expect(c.batcher.pending).toBe(64);
    expect(c.batcher.dropped).toBe(10_000 - 64);
    expect(c.warnings).toEqual(['serial console: the console output is not draining; guest output beyond 64 bytes is dropped']);
    await c.pipe.drain();
    const expected = Buffer.from([0x3e, ...Array.from({ length: 64 }, (_, i) => pattern(i))]);
    expect(c.pipe.bytes.equals(expected)).toBe(true);
    expect(c.warnings).toHaveLength(1);
  });

  it('a batch reaching half the limit within one turn stalls THR until it is flushed, even with a sink that drains', async () => {
    const out: number[] = [];
    let uart: Uart8250 | undefined;
    const batcher = new ByteBatcher((bytes) => out.push(...bytes), { limit: 8, onReady: () => uart!.transmitterReady() });
    uart = new Uart8250({ output: (b) => batcher.push(b), setIrq: () => {} });
    const d = new Uint8Array(1);
    for (let i = 0; i < 4; i++) uart.write(R.DATA, Uint8Array.of(i));
    uart.read(R.LSR, d);
    expect(d[0] & LSR_THRE).toBe(0);
    await turn();
    expect(out).toEqual([0, 1, 2, 3]);
    uart.read(R.LSR, d);
    expect(d[0] & LSR_THRE).toBe(LSR_THRE);
  });

  it('after close(), a late drain still writes held output but does not touch the UART', async () => {
    const c = serialConsole();
    c.wr(R.DATA, 1);
    await turn();
    c.wr(R.DATA, 2);
    c.batcher.close();
    await c.pipe.drain();
    expect([...c.pipe.bytes]).toEqual([1, 2]);
    expect(c.rd(R.LSR) & LSR_THRE).toBe(0);
  });
});
