// toDuplex: a Node stream.Duplex over a connection, against a guest stack on real time: data both ways,
// half-close, backpressure both ways (the guest runs out of credit; write() waits for the guest), resets.
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { VirtioTestDriver } from '@hype/virtio/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { toDuplex } from '../node/index.js';
import { type VsockConnection, VsockDevice, type VsockDeviceOptions } from '../src/index.js';
import { type GuestConn, GuestStack, until } from './guest-stack.js';
import { pattern } from './helpers.js';

const stacks: GuestStack[] = [];
afterEach(() => {
  for (const s of stacks.splice(0)) s.stop();
});

function setup(options: VsockDeviceOptions = {}, guest: { bufAlloc?: number } = {}) {
  const device = new VsockDevice(options);
  const drv = new VirtioTestDriver(device, { ramSize: 64 << 20, queueSize: 256 });
  drv.init();
  const stack = new GuestStack(drv, guest);
  stacks.push(stack);
  stack.start();
  return { device, drv, stack };
}

function readAll(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (b: Buffer) => parts.push(b));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('toDuplex', () => {
  it('carries bytes both ways and half-closes both ways; a clean close ends it without error', async () => {
    const { device, stack } = setup();
    stack.listen(1234, (conn) => {
      conn.onData = (b) => conn.write(Buffer.from(Buffer.from(b).toString().toUpperCase()));
      conn.onEnd = () => conn.shutdown();
    });
    const duplex = toDuplex(await device.connect(1234));
    const closed = new Promise<void>((resolve, reject) => {
      duplex.on('close', resolve);
      duplex.on('error', reject);
    });
    const got = readAll(duplex);
    duplex.write('hello ');
    duplex.end('world');
    expect((await got).toString()).toBe('HELLO WORLD');
    await closed;
    // The Duplex closed the connection gracefully: SHUTDOWN(RCV|SEND), answered by the guest's RST.
    await until(() => device.connectionCount === 0, 5000, 'the connection to end');
    expect(stack.strayRsts).toEqual([]);
  });

  it('guest → host backpressure: an unread Duplex pauses the connection; the guest runs out of credit', async () => {
    const { device, stack } = setup({ bufAlloc: 64 * 1024 });
    let guestSide!: GuestConn;
    stack.listen(7, (conn) => {
      guestSide = conn;
      conn.write(pattern(1 << 20));
      conn.shutdown();
    });
    const conn = await device.connect(7);
    const duplex = toDuplex(conn, { readableHighWaterMark: 16 * 1024 });
    await until(() => conn.isPaused, 5000, 'the connection to pause');
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Bounded on the host: the Duplex's buffer plus at most buf_alloc in the connection.
    expect(conn.readableLength).toBeLessThanOrEqual(64 * 1024);
    expect(duplex.readableLength).toBeLessThanOrEqual(64 * 1024 + 16 * 1024);
    expect(guestSide.pendingBytes).toBeGreaterThan(700 * 1024); // the guest waits for credit
    const all = await readAll(duplex);
    expect(sha(all)).toBe(sha(pattern(1 << 20)));
  });

  it('host → guest backpressure: writes wait while the guest does not consume; all arrive once it does', async () => {
    const { device, stack } = setup({ sendHighWaterMark: 32 * 1024 }, { bufAlloc: 32 * 1024 });
    let guestSide!: GuestConn;
    stack.listen(8, (conn) => {
      guestSide = conn;
      conn.paused = true;
    });
    const conn: VsockConnection = await device.connect(8);
    const duplex = toDuplex(conn, { writableHighWaterMark: 16 * 1024 });
    const data = pattern(3 << 20); // one chunk larger than the connection's hard queue limit (1 MiB)
    let finished = false;
    duplex.end(data, () => (finished = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(finished).toBe(false);
    expect(guestSide.receivedBytes).toBeLessThanOrEqual(32 * 1024); // the guest's credit
    expect(conn.writableLength).toBeLessThanOrEqual(32 * 1024 + 64 * 1024); // fed in slices after each drain
    expect(duplex.writableLength).toBeGreaterThan(0); // the Duplex holds the rest meanwhile
    guestSide.resume();
    const timer = setInterval(() => guestSide.resume(), 2);
    try {
      await until(() => guestSide.receivedBytes === data.length && finished, 10_000, 'all bytes to arrive');
    } finally {
      clearInterval(timer);
    }
    expect(sha(Buffer.concat(guestSide.received))).toBe(sha(data));
  });

  it('a guest RST destroys the Duplex with ECONNRESET; destroying the Duplex sends RST', async () => {
    const { device, stack } = setup();
    const guests: GuestConn[] = [];
    stack.listen(9, (conn) => guests.push(conn));
    const a = toDuplex(await device.connect(9));
    const error = new Promise<Error>((resolve) => a.on('error', resolve));
    guests[0].rst();
    expect(await error).toMatchObject({ code: 'ECONNRESET' });

    const b = toDuplex(await device.connect(9));
    let reset: boolean | undefined;
    guests[1].onClose = (r) => (reset = r);
    b.destroy(new Error('abort'));
    b.on('error', () => {});
    await until(() => reset !== undefined, 5000, 'the guest to see RST');
    expect(reset).toBe(true);
  });
});
