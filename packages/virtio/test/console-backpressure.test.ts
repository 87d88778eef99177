// Emergency write (a config write the guest can repeat at will) into a sink that stopped draining:
// host memory stays bounded, and the bytes that were held come out in order once the sink drains.
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ConsoleConfig, ConsoleDevice } from '../src/console.js';
import { ArrayGuestMemory } from '../src/memory.js';
import { MmioReg } from '../src/mmio-registers.js';
import { MmioTransport } from '../src/mmio.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MiB = 1 << 20;

/** JS heap plus ArrayBuffer backing stores, after a full GC. */
function heap(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * A pipe whose reader stopped reading: a real Writable that keeps every write it is given (as a stream's
 * internal buffer does) and completes none until `drain()`.
 */
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
    sink: { write: (b: Uint8Array) => stream.write(b), onDrain: (f: () => void) => void stream.on('drain', f) },
    /** The reader catches up: everything buffered is written, and the stream emits 'drain'. */
    async drain() {
      stuck = false;
      pending?.();
      await new Promise((r) => setImmediate(r));
    },
    get text() {
      return Buffer.concat(received).toString('latin1');
    },
  };
}

function setup(options: { maxPendingEmergency?: number } = {}) {
  const pipe = stuckPipe();
  const device = new ConsoleDevice({ sink: pipe.sink, ...options });
  const warnings: string[] = [];
  const transport = new MmioTransport(device, {
    memory: new ArrayGuestMemory(new Uint8Array(0x1000)),
    interrupt: () => {},
    log: { warn: (m) => warnings.push(m) },
  });
  const emergencyWrite = (byte: number) => transport.write(MmioReg.CONFIG + ConsoleConfig.EMERG_WR, 4, byte);
  return { pipe, device, warnings, emergencyWrite };
}

describe('virtio console: emergency write into a sink that does not drain', () => {
  it('1M one-byte emergency writes keep host memory bounded; the held bytes come out in order after drain', async () => {
    const c = setup();
    c.emergencyWrite(0x3e); // taken by the sink, which then reports "full"
    const before = heap();
    const n = 1 << 20;
    for (let i = 0; i < n; i++) c.emergencyWrite(0x61 + (i % 26));
    const growth = heap() - before;
    expect(growth).toBeLessThan(16 * MiB);
    expect(c.device.pendingEmergency).toBe(n); // the default limit (1 MiB) holds all of them
    expect(c.device.droppedEmergency).toBe(0);
    expect(c.pipe.text).toBe('>');
    await c.pipe.drain();
    const expected = Buffer.alloc(1 + n);
    expected[0] = 0x3e;
    for (let i = 0; i < n; i++) expected[1 + i] = 0x61 + (i % 26);
    expect(Buffer.from(c.pipe.text, 'latin1').equals(expected)).toBe(true);
    expect(c.device.pendingEmergency).toBe(0);
  });

  it('past the limit, bytes are dropped and counted with one warning; output resumes after drain', async () => {
    const c = setup({ maxPendingEmergency: 8 });
    c.emergencyWrite(0x3e);
    for (const ch of 'held-byt' + 'dropped!'.repeat(1000)) c.emergencyWrite(ch.charCodeAt(0));
    expect(c.device.pendingEmergency).toBe(8);
    expect(c.device.droppedEmergency).toBe(8000);
    expect(c.warnings.filter((w) => w.includes('emergency-write bytes beyond 8 are dropped'))).toHaveLength(1);
    await c.pipe.drain();
    expect(c.pipe.text).toBe('>held-byt');
    // Flowing again: straight to the sink.
    for (const ch of 'ok') c.emergencyWrite(ch.charCodeAt(0));
    expect(c.pipe.text).toBe('>held-bytok');
    expect(c.warnings.filter((w) => w.includes('dropped'))).toHaveLength(1);
  });
});
