import { describe, expect, it } from 'vitest';
import { ConsoleDevice, type ConsoleDeviceOptions, ConsoleFeature } from '../src/console.js';
import { Status, featureMask } from '../src/features.js';
import { ArrayGuestMemory } from '../src/memory.js';
import { MmioInterrupt, MmioReg } from '../src/mmio-registers.js';
import { MmioTransport } from '../src/mmio.js';
import type { QueueLayout } from '../src/queue.js';
import { DescFlag } from '../src/ring-layout.js';
import { DriverQueue, bringUp } from '../src/testing/index.js';

const rxLayout: QueueLayout = { size: 16, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000 };
const txLayout: QueueLayout = { size: 16, descAddr: 0x4000, availAddr: 0x5000, usedAddr: 0x6000 };
const RX_DATA = 0x10000;
const TX_DATA = 0x20000;
const SLOT = 0x1000;

class TestSink {
  chunks: Uint8Array[] = [];
  /** write() returns false once this many more writes happened (undefined: never full). */
  fullAfter: number | undefined;
  private drain: (() => void) | undefined;
  onWrite: (() => void) | undefined;
  write(bytes: Uint8Array): boolean {
    this.chunks.push(bytes);
    this.onWrite?.();
    if (this.fullAfter === undefined) return true;
    this.fullAfter--;
    return this.fullAfter > 0;
  }
  onDrain(listener: () => void): void {
    this.drain = listener;
  }
  drained(): void {
    this.fullAfter = undefined;
    this.drain?.();
  }
  /** Signal drain but stay ready to report full again after `fullAfter` writes. */
  drainedUntilFullAfter(writes: number): void {
    this.fullAfter = writes;
    this.drain?.();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

class TestSource {
  paused = false;
  pauses = 0;
  resumes = 0;
  private listener: ((bytes: Uint8Array) => void) | undefined;
  onData(listener: (bytes: Uint8Array) => void): void {
    this.listener = listener;
  }
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
  push(text: string): void {
    this.listener?.(Buffer.from(text, 'latin1'));
  }
}

function setup(options: Partial<ConsoleDeviceOptions> = {}) {
  const ram = new Uint8Array(0x40000);
  const sink = new TestSink();
  const source = new TestSource();
  const device = new ConsoleDevice({ sink, source, ...options });
  const irq: boolean[] = [];
  const warnings: string[] = [];
  const transport = new MmioTransport(device, {
    memory: new ArrayGuestMemory(ram),
    interrupt: (l) => irq.push(l),
    log: { warn: (m) => warnings.push(m) },
  });
  let rx = new DriverQueue(ram, rxLayout);
  let tx = new DriverQueue(ram, txLayout);
  let txSlot = 0;
  let rxSlot = 0;
  /** What a driver does after a reset: fresh, zeroed rings. */
  const reinit = () => {
    for (const l of [rxLayout, txLayout]) ram.fill(0, l.descAddr, l.usedAddr + 0x1000);
    rx = new DriverQueue(ram, rxLayout);
    tx = new DriverQueue(ram, txLayout);
    txSlot = rxSlot = 0;
  };
  /** The guest writes `text` in one transmit chain of `pieces` buffers. */
  const send = (text: string, pieces = 1) => {
    const bytes = Buffer.from(text, 'latin1');
    const head = txSlot++ % txLayout.size;
    const base = TX_DATA + head * SLOT;
    ram.set(bytes, base);
    const cut = Math.ceil(bytes.length / pieces);
    const descs = [];
    for (let i = 0; i < pieces; i++) {
      descs.push({ addr: base + i * cut, len: Math.max(0, Math.min(cut, bytes.length - i * cut)) });
    }
    // Chains use consecutive descriptor indices; keep them within the table by one buffer per chain
    // unless asked otherwise.
    tx.setChain(head, descs);
    tx.publish(head);
  };
  /** The guest posts a receive buffer of `len` bytes. */
  const postRx = (len: number) => {
    const head = rxSlot++ % rxLayout.size;
    rx.setDesc(head, { addr: RX_DATA + head * SLOT, len, flags: DescFlag.WRITE });
    rx.publish(head);
  };
  /** What the guest received, in used-ring order, starting at used index `from`. */
  const received = (from = 0) => {
    let out = '';
    for (let i = from; i < rx.usedIdx; i++) {
      const { id, len } = rx.used(i);
      out += Buffer.from(ram.subarray(RX_DATA + id * SLOT, RX_DATA + id * SLOT + len)).toString('latin1');
    }
    return out;
  };
  return {
    ...{ ram, sink, source, device, transport, irq, warnings, send, postRx, received, reinit },
    get rx() {
      return rx;
    },
    get tx() {
      return tx;
    },
  };
}

describe('virtio console: transmit', () => {
  it('writes guest output to the sink in order and returns the buffers', () => {
    const c = setup();
    bringUp(c.transport, [rxLayout, txLayout]);
    c.send('hello, ');
    c.send('world\n', 3);
    c.transport.notify(1);
    expect(c.sink.text).toBe('hello, world\n');
    expect(c.tx.usedIdx).toBe(2);
    expect(c.tx.used(0)).toEqual({ id: 0, len: 0 });
    expect(c.transport.interruptStatus & MmioInterrupt.VRING).toBe(MmioInterrupt.VRING);
  });

  it('output posted before DRIVER_OK is sent at activation', () => {
    const c = setup();
    c.send('early');
    bringUp(c.transport, [rxLayout, txLayout]);
    expect(c.sink.text).toBe('early');
  });

  it('stops taking chains while the sink is full and resumes on drain, losing and reordering nothing', () => {
    const c = setup({ maxWriteChunk: 4 });
    bringUp(c.transport, [rxLayout, txLayout]);
    c.sink.fullAfter = 2; // the second write reports "full"
    c.send('0123456789'); // 3 chunks of <= 4 bytes
    c.send('abcdef');
    c.transport.notify(1);
    expect(c.sink.text).toBe('01234567');
    expect(c.tx.usedIdx).toBe(0); // first chain not finished: still the device's
    c.transport.notify(1); // notifications while full change nothing
    expect(c.sink.text).toBe('01234567');
    // drain: "89" finishes the first chain, then "abcd" of the second -> full again
    c.sink.drainedUntilFullAfter(2);
    expect(c.sink.text).toBe('0123456789abcd');
    expect(c.tx.usedIdx).toBe(1);
    c.sink.drained();
    expect(c.sink.text).toBe('0123456789abcdef');
    expect(c.tx.usedIdx).toBe(2);
  });

  it('a reset while the sink is full drops the half-sent chain of the old driver', () => {
    const c = setup({ maxWriteChunk: 2 });
    bringUp(c.transport, [rxLayout, txLayout]);
    c.sink.fullAfter = 1;
    c.send('abcdef');
    c.transport.notify(1);
    expect(c.sink.text).toBe('ab');
    c.transport.write(MmioReg.STATUS, 4, 0);
    c.reinit();
    bringUp(c.transport, [rxLayout, txLayout]);
    c.sink.drained();
    expect(c.sink.text).toBe('ab');
    c.send('new');
    c.transport.notify(1);
    expect(c.sink.text).toBe('abnew');
  });

  it('a guest refilling the transmit queue forever cannot keep the device in one call', async () => {
    const c = setup();
    bringUp(c.transport, [rxLayout, txLayout]);
    // Every write makes the "guest" (another vCPU) publish one more chain.
    c.sink.onWrite = () => c.send('x');
    c.send('x');
    c.transport.notify(1);
    expect(c.sink.chunks.length).toBe(256);
    await new Promise((r) => setTimeout(r, 5));
    expect(c.sink.chunks.length).toBeGreaterThan(256);
    c.sink.onWrite = undefined;
    c.transport.write(MmioReg.STATUS, 4, 0);
  });

  it('malformed transmit chains are returned and skipped', () => {
    const c = setup();
    bringUp(c.transport, [rxLayout, txLayout]);
    c.tx.setDesc(9, { addr: 0xffff_0000, len: 16 });
    c.tx.publish(9);
    c.send('ok');
    c.transport.notify(1);
    expect(c.sink.text).toBe('ok');
    expect(c.warnings.some((m) => m.includes('not guest RAM'))).toBe(true);
  });
});

describe('virtio console: containment', () => {
  it('a sink that throws on a drain-triggered write sets DEVICE_NEEDS_RESET instead of throwing into the stream', () => {
    const c = setup();
    bringUp(c.transport, [rxLayout, txLayout]);
    c.sink.fullAfter = 1;
    c.send('a');
    c.send('b');
    c.transport.notify(1);
    c.sink.write = () => {
      throw new Error('EPIPE');
    };
    expect(() => c.sink.drained()).not.toThrow();
    expect(c.transport.status & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
    expect(c.warnings.some((m) => m.includes('EPIPE'))).toBe(true);
  });
});

describe('virtio console: receive', () => {
  it('buffers host input until the guest posts receive buffers, then fills them in order', () => {
    const c = setup();
    c.source.push('typed before boot;');
    bringUp(c.transport, [rxLayout, txLayout]);
    expect(c.device.bufferedInput).toBe(18);
    c.source.push(' more');
    c.postRx(8);
    c.postRx(8);
    c.transport.notify(0);
    expect(c.received()).toBe('typed before boot'.slice(0, 16));
    c.postRx(64);
    c.transport.notify(0);
    expect(c.received()).toBe('typed before boot; more');
    expect(c.device.bufferedInput).toBe(0);
    expect(c.rx.used(2).len).toBe(7);
    // An empty buffer stays posted until input comes.
    c.postRx(64);
    c.transport.notify(0);
    expect(c.rx.usedIdx).toBe(3);
    c.source.push('!');
    expect(c.rx.usedIdx).toBe(4);
    expect(c.received(3)).toBe('!');
  });

  it('pauses the source above the high-water mark and resumes once the guest has read enough', () => {
    const c = setup({ inputHighWater: 100 });
    bringUp(c.transport, [rxLayout, txLayout]);
    const input = Array.from({ length: 12 }, (_, i) => String.fromCharCode(65 + i).repeat(10)).join('');
    for (let i = 0; i < 12; i++) c.source.push(input.slice(i * 10, i * 10 + 10));
    expect(c.source.paused).toBe(true);
    expect(c.source.pauses).toBe(1);
    expect(c.device.bufferedInput).toBe(120);
    c.postRx(40);
    c.transport.notify(0);
    expect(c.source.paused).toBe(true); // 80 left: not below half the high-water mark yet
    c.postRx(40);
    c.transport.notify(0);
    expect(c.source.paused).toBe(false);
    expect(c.source.resumes).toBe(1);
    c.source.push('tail');
    c.postRx(100);
    c.transport.notify(0);
    expect(c.received()).toBe(`${input}tail`);
  });
});

describe('virtio console: config', () => {
  it('offers VIRTIO_CONSOLE_F_SIZE only with a size, reports cols/rows, and resize raises a config change', () => {
    const without = setup();
    expect(without.device.deviceFeatures & featureMask(ConsoleFeature.SIZE)).toBe(0n);
    const c = setup({ size: { cols: 80, rows: 25 } });
    expect(c.device.deviceFeatures & featureMask(ConsoleFeature.SIZE)).not.toBe(0n);
    expect(c.transport.read(MmioReg.CONFIG, 2)).toBe(80);
    expect(c.transport.read(MmioReg.CONFIG + 2, 2)).toBe(25);
    bringUp(c.transport, [rxLayout, txLayout]);
    c.device.resize(132, 43);
    expect(c.transport.read(MmioReg.CONFIG, 4)).toBe(132 | (43 << 16));
    expect(c.transport.configGeneration).toBe(1);
    expect(c.transport.interruptStatus & MmioInterrupt.CONFIG).toBe(MmioInterrupt.CONFIG);
  });

  it('emergency write goes straight to the sink; other config writes are ignored', () => {
    const c = setup();
    c.transport.write(MmioReg.CONFIG + 8, 4, 0x41);
    c.transport.write(MmioReg.CONFIG, 2, 99);
    expect(c.sink.text).toBe('A');
    expect(c.transport.read(MmioReg.CONFIG, 2)).toBe(0);
    expect(c.warnings).toHaveLength(1);
  });

  it('needs both queues', () => {
    const c = setup();
    const status = bringUp(c.transport, [rxLayout]);
    expect(status & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
  });
});
