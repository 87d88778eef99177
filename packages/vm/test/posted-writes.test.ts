// Posted port writes (issue 15): the 8250 says when a THR write may arrive late (PostedWrites), and
// CoalescedPio registers those ports with KVM and delivers the queued writes in order.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CoalescedZoneOptions } from '@hype/kvm';
import { Bus, type PostedWrites, type ReadMirror } from '../src/bus.js';
import {
  FCR_ENABLE_FIFO, IER_MSI, IER_RDI, IER_RLSI, IER_THRI, LCR_DLAB, MCR_LOOP, MCR_OUT2, MCR_RTS, UART_FIFO_SIZE, UART_PORT_COUNT,
  Uart8250, UartReg as R,
} from '../src/devices/uart8250.js';
import { CoalescedPio, type CoalescedPioRing } from '../src/machine/coalesced-pio.js';
import { ByteBatcher } from '../src/machine/console-io.js';

function uartSetup(options: { blockOutput?: () => boolean } = {}) {
  const published = new Map<number, number | undefined>();
  const posted = new Map<number, boolean>();
  const events: string[] = [];
  const mirror: ReadMirror = { publish: (offset, value) => void published.set(offset, value) };
  const postedWrites: PostedWrites = { post: (offset, value) => void posted.set(offset, value) };
  const uart = new Uart8250({
    output: (byte) => {
      events.push(`out ${byte}`);
      return options.blockOutput?.() === true ? false : undefined;
    },
    setIrq: (level) => void events.push(`irq ${level}`),
    mirror,
    postedWrites,
  });
  const rd = (reg: number) => {
    const d = new Uint8Array(1);
    uart.read(reg, d);
    return d[0];
  };
  const wr = (reg: number, v: number) => uart.write(reg, Uint8Array.of(v));
  return { uart, published, posted, events, rd, wr };
}

describe('Uart8250 posted THR writes', () => {
  it('posts THR from reset, and withdraws it for THRI, loopback, DLAB and a blocked output', () => {
    let block = false;
    const t = uartSetup({ blockOutput: () => block });
    expect(t.posted.get(R.DATA)).toBe(true);
    expect([...t.posted.keys()]).toEqual([R.DATA]); // no other register is ever posted

    t.wr(R.IER, IER_THRI);
    expect(t.posted.get(R.DATA)).toBe(false);
    t.wr(R.IER, IER_RDI);
    expect(t.posted.get(R.DATA)).toBe(true);

    t.wr(R.MCR, MCR_LOOP | MCR_OUT2);
    expect(t.posted.get(R.DATA)).toBe(false);
    t.wr(R.MCR, MCR_OUT2);
    expect(t.posted.get(R.DATA)).toBe(true);

    t.wr(R.LCR, LCR_DLAB | 3);
    expect(t.posted.get(R.DATA)).toBe(false);
    t.wr(R.LCR, 3);
    expect(t.posted.get(R.DATA)).toBe(true);

    block = true;
    t.wr(R.DATA, 0x41);
    expect(t.posted.get(R.DATA)).toBe(false);
    block = false;
    t.uart.transmitterReady();
    expect(t.posted.get(R.DATA)).toBe(true);
  });

  it('random accesses: while THR is posted, a THR write only hands the byte to output (no published value, no interrupt moves)', () => {
    let seed = 1515;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    let block = false;
    const t = uartSetup({ blockOutput: () => block });
    // Mostly values Linux writes, half of them leaving THR posted, so both states get long runs.
    const interesting = [IER_THRI | IER_RDI | IER_RLSI | IER_MSI, IER_RDI | IER_RLSI, IER_RDI, 0, MCR_LOOP | MCR_OUT2 | MCR_RTS, MCR_OUT2, MCR_OUT2 | MCR_RTS, FCR_ENABLE_FIFO, LCR_DLAB | 3, 3, 3];
    let checked = 0;
    for (let i = 0; i < 20_000; i++) {
      const reg = rnd() % UART_PORT_COUNT;
      const op = rnd() % 10;
      if (op < 4) t.wr(reg, rnd() % 8 !== 0 ? interesting[rnd() % interesting.length] : rnd() & 0xff);
      else if (op < 7) t.rd(reg);
      else if (op === 7) t.uart.receive(new Uint8Array(rnd() % (UART_FIFO_SIZE + 2)).map(() => rnd() & 0xff));
      else {
        block = rnd() % 4 === 0;
        t.uart.transmitterReady();
      }
      expect(t.posted.get(R.DATA)).toBe(t.uart.thrWritePostable());
      if (!t.posted.get(R.DATA) || block) continue;
      // The output accepts: the write must be invisible to the guest until its next access.
      checked++;
      const before = [...t.published.entries()];
      const events = t.events.length;
      const byte = rnd() & 0xff;
      t.wr(R.DATA, byte);
      expect([...t.published.entries()]).toEqual(before);
      expect(t.events.slice(events)).toEqual([`out ${byte}`]);
      expect(t.posted.get(R.DATA)).toBe(true);
    }
    expect(checked).toBeGreaterThan(1_000);
  });
});

/** A fake KVM: zones registered, and a ring the test fills. */
function fakeKvm(options: { refuse?: boolean } = {}) {
  const zones: string[] = [];
  const calls: string[] = [];
  const queue: [number, number][] = [];
  const vm = {
    coalescedZone(zone: CoalescedZoneOptions) {
      if (options.refuse) throw new Error('ioctl KVM_REGISTER_COALESCED_MMIO failed: ENOTTY');
      const key = `${zone.pio ? 'pio' : 'mmio'} 0x${zone.addr.toString(16)}+${zone.size}`;
      zones.push(key);
      calls.push(`register ${key}`);
      return {
        remove: () => {
          zones.splice(zones.indexOf(key), 1);
          calls.push(`unregister ${key}`);
        },
      };
    },
  };
  const ring: CoalescedPioRing = {
    get pending() {
      return queue.length > 0;
    },
    drain(visit) {
      let n = 0;
      while (queue.length > 0) {
        const [port, byte] = queue.shift()!;
        n++;
        visit(port, Uint8Array.of(byte), true);
      }
      return n;
    },
  };
  return { vm, ring, zones, calls, queue };
}

function busWithRecorder() {
  const bus = new Bus('pio');
  const writes: string[] = [];
  bus.register(0x3f8, 8, { read: (_o, d) => d.fill(0), write: (o, d) => void writes.push(`${o}:${d[0]}`) }, 'uart');
  return { bus, writes };
}

describe('CoalescedPio', () => {
  afterEach(() => vi.useRealTimers());

  it('registers a posted port once, unregisters it when withdrawn, and delivers the ring to the bus in order', () => {
    const kvm = fakeKvm();
    const { bus, writes } = busWithRecorder();
    const pio = new CoalescedPio(kvm.vm, bus);
    const uartPosts = pio.forDevice(0x3f8);
    uartPosts.post(0, true);
    uartPosts.post(0, true);
    expect(kvm.calls).toEqual(['register pio 0x3f8+1']);
    expect(pio.postedPorts).toEqual([0x3f8]);
    pio.attach(kvm.ring);
    kvm.queue.push([0x3f8, 0x68], [0x3f8, 0x69]);
    expect(pio.drain()).toBe(2);
    expect(writes).toEqual(['0:104', '0:105']);
    expect(pio.delivered).toBe(2);
    uartPosts.post(0, false);
    uartPosts.post(0, false);
    expect(kvm.calls).toEqual(['register pio 0x3f8+1', 'unregister pio 0x3f8+1']);
    expect(pio.drain()).toBe(0);
  });

  it('polls the ring while a port is posted, faster while writes arrive, and stops when closed', () => {
    vi.useFakeTimers();
    const kvm = fakeKvm();
    const { bus, writes } = busWithRecorder();
    const pio = new CoalescedPio(kvm.vm, bus, { pollMs: { min: 5, max: 40 } });
    pio.forDevice(0x3f8).post(0, true);
    pio.attach(kvm.ring);
    kvm.queue.push([0x3f8, 1]);
    vi.advanceTimersByTime(100);
    expect(writes).toEqual([]); // not started: no guest runs yet
    pio.start();
    vi.advanceTimersByTime(5);
    expect(writes).toEqual(['0:1']);
    // Idle: 10, 20, 40, 40 ms later; a write waits at most the longest interval.
    vi.advanceTimersByTime(10 + 20 + 40);
    kvm.queue.push([0x3f8, 2]);
    vi.advanceTimersByTime(40);
    expect(writes).toEqual(['0:1', '0:2']);
    kvm.queue.push([0x3f8, 3]);
    pio.close();
    expect(writes).toEqual(['0:1', '0:2', '0:3']); // close delivers what is left
    expect(kvm.zones).toEqual([]);
    kvm.queue.push([0x3f8, 4]);
    vi.advanceTimersByTime(1000);
    expect(writes).toHaveLength(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('no timer while nothing is posted', () => {
    vi.useFakeTimers();
    const kvm = fakeKvm();
    const pio = new CoalescedPio(kvm.vm, busWithRecorder().bus);
    pio.attach(kvm.ring);
    pio.start();
    expect(vi.getTimerCount()).toBe(0);
    pio.post(0x3f8, true);
    expect(vi.getTimerCount()).toBe(1);
    pio.close();
  });

  it('a KVM that refuses the zone: one warning, writes keep exiting, no retry', () => {
    const kvm = fakeKvm({ refuse: true });
    const warnings: string[] = [];
    const pio = new CoalescedPio(kvm.vm, busWithRecorder().bus, { warn: (m) => warnings.push(m) });
    pio.post(0x3f8, true);
    pio.post(0x3f8, false);
    pio.post(0x3f8, true);
    expect(warnings).toEqual([
      'coalesced port I/O refused for port 0x3f8 (ioctl KVM_REGISTER_COALESCED_MMIO failed: ENOTTY); port writes exit one by one',
    ]);
    expect(pio.postedPorts).toEqual([]);
  });

  it('a device failing on a write the timer delivered is reported through onError, not thrown into the event loop', () => {
    vi.useFakeTimers();
    const kvm = fakeKvm();
    const bus = new Bus('pio');
    bus.register(0x3f8, 1, { read: () => {}, write: () => { throw new Error('broken'); } }, 'uart');
    const errors: unknown[] = [];
    const pio = new CoalescedPio(kvm.vm, bus, { onError: (e) => errors.push(e) });
    pio.post(0x3f8, true);
    pio.attach(kvm.ring);
    pio.start();
    kvm.queue.push([0x3f8, 1]);
    vi.advanceTimersByTime(10);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/pio write at 0x3f8 \(uart\) failed: broken/);
    expect(vi.getTimerCount()).toBe(0); // the VM is ending: no more polls
  });
});

describe('the end of a VM', () => {
  afterEach(() => vi.useRealTimers());

  it('posted output drained at teardown reaches the sink before the teardown returns (ByteBatcher.close flushes)', () => {
    const kvm = fakeKvm();
    const out: string[] = [];
    const batcher = new ByteBatcher((bytes) => void out.push(new TextDecoder().decode(bytes)));
    const bus = new Bus('pio');
    bus.register(0x3f8, 1, { read: () => {}, write: (_o, d) => void batcher.push(d[0]) }, 'uart');
    const pio = new CoalescedPio(kvm.vm, bus);
    pio.post(0x3f8, true);
    pio.attach(kvm.ring);
    for (const c of 'tail\n') kvm.queue.push([0x3f8, c.charCodeAt(0)]);
    pio.close();
    batcher.close();
    expect(out.join('')).toBe('tail\n');
  });

  it('without onError, a failure on a timer drain is thrown by the next drain (the exit path), not into the event loop', () => {
    vi.useFakeTimers();
    const kvm = fakeKvm();
    const bus = new Bus('pio');
    bus.register(0x3f8, 1, { read: () => {}, write: () => { throw new Error('broken'); } }, 'uart');
    const pio = new CoalescedPio(kvm.vm, bus);
    pio.post(0x3f8, true);
    pio.attach(kvm.ring);
    pio.start();
    kvm.queue.push([0x3f8, 1]);
    expect(() => vi.advanceTimersByTime(10)).not.toThrow();
    expect(() => pio.drain()).toThrow(/broken/);
    expect(pio.drain()).toBe(0);
    pio.close();
  });
});
