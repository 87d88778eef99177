// QEMU's `-netdev stream` framing (what passt speaks on its Unix socket): the Node-free codec, and the
// /node backend against a fake peer (a net.createServer on a Unix socket in a temp dir): frames both ways,
// backpressure both ways, an oversized length prefix, the peer closing, connection errors, and a device
// over it end to end. passt itself is not started here.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioTestDriver } from '@hype/virtio/testing';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamBackend, connectStreamBackend } from '../node/index.js';
import {
  NET_HDR,
  NetQueue,
  STREAM_MAX_FRAME,
  StreamFrameDecoder,
  StreamFrameError,
  VirtioNetDevice,
  encodeStreamFrame,
} from '../src/index.js';
import { RX_BUF, concat, groupReceived, makeFrame, sameBytes } from './helpers.js';

const lengthPrefix = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
};

describe('stream framing codec', () => {
  it('encodes a 4-byte big-endian length, then the frame', () => {
    const f = makeFrame(300, 1);
    const e = encodeStreamFrame(f);
    expect([...e.subarray(0, 4)]).toEqual([0, 0, 1, 44]);
    expect(sameBytes(e.subarray(4), f)).toBe(true);
  });

  it('decodes frames however the bytes are chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }), (lengths, chunkSizes) => {
        const frames = lengths.map((n, i) => makeFrame(n, i));
        const stream = concat(frames.map(encodeStreamFrame));
        const d = new StreamFrameDecoder();
        const out: Uint8Array[] = [];
        for (let o = 0, i = 0; o < stream.length; i++) {
          const n = chunkSizes[i % chunkSizes.length];
          d.push(stream.subarray(o, o + n));
          o += n;
          for (let f = d.next(); f !== undefined; f = d.next()) out.push(f);
        }
        const expected = frames.filter((f) => f.length > 0); // zero-length frames are skipped
        expect(out.length).toBe(expected.length);
        out.forEach((f, i) => expect(sameBytes(f, expected[i])).toBe(true));
        expect(d.bufferedBytes).toBe(0);
        expect(d.midFrame).toBe(false);
      }),
    );
  });

  it('one byte at a time, and several frames in one chunk', () => {
    const frames = [makeFrame(60, 1), makeFrame(1, 2), makeFrame(1514, 3)];
    const stream = concat(frames.map(encodeStreamFrame));
    const d = new StreamFrameDecoder();
    const out: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) {
      d.push(stream.subarray(i, i + 1));
      const f = d.next();
      if (f !== undefined) out.push(f);
      if (i === 2) expect(d.midFrame).toBe(true);
    }
    expect(out.map((f) => f.length)).toEqual([60, 1, 1514]);
    const all = new StreamFrameDecoder();
    all.push(stream);
    expect([all.next(), all.next(), all.next(), all.next()].map((f) => f?.length)).toEqual([60, 1, 1514, undefined]);
  });

  it('a length above the maximum fails before allocating, and keeps failing', () => {
    const d = new StreamFrameDecoder(2000);
    d.push(concat([encodeStreamFrame(makeFrame(2000)), lengthPrefix(2001), new Uint8Array(10)]));
    expect(d.next()?.length).toBe(2000);
    expect(() => d.next()).toThrow(StreamFrameError);
    expect(() => d.next()).toThrow(/2001 bytes, above the 2000-byte maximum/);
    d.push(new Uint8Array(100));
    expect(d.bufferedBytes).toBe(0);
    const huge = new StreamFrameDecoder();
    huge.push(lengthPrefix(0xffffffff));
    expect(() => huge.next()).toThrow(StreamFrameError);
    expect(STREAM_MAX_FRAME).toBe(65553);
    expect(() => new StreamFrameDecoder(0)).toThrow(RangeError);
  });
});

let dir: string;
const cleanups: Array<() => unknown> = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hype-net-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A fake `-netdev stream` peer (what passt would be): decodes what it receives, writes what a test tells it. */
async function fakePeer() {
  const path = join(dir, 'net.sock');
  const state = { socket: undefined as Socket | undefined, frames: [] as Uint8Array[], closed: false, decoder: new StreamFrameDecoder() };
  const server: Server = createServer((socket) => {
    state.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      state.decoder.push(new Uint8Array(chunk));
      for (let f = state.decoder.next(); f !== undefined; f = state.decoder.next()) state.frames.push(f);
    });
    socket.on('close', () => (state.closed = true));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  cleanups.push(() => state.socket?.destroy());
  return { path, state, server };
}

async function connected() {
  const peer = await fakePeer();
  const backend = await connectStreamBackend(peer.path);
  cleanups.push(() => backend.close());
  await until(() => peer.state.socket !== undefined, 'the peer to accept');
  return { peer, backend, socket: peer.state.socket! };
}

describe('StreamBackend against a fake peer', () => {
  it('frames go both ways byte-exact, however the peer chunks them', async () => {
    const { peer, backend, socket } = await connected();
    const got: Uint8Array[] = [];
    backend.onFrame((f) => got.push(f));
    const out = [makeFrame(60, 1), makeFrame(1514, 2), makeFrame(65535 + 18, 3)];
    for (const f of out) expect(backend.send(f)).toBe(true);
    await until(() => peer.state.frames.length === 3, 'the peer to get 3 frames');
    peer.state.frames.forEach((f, i) => expect(sameBytes(f, out[i])).toBe(true));
    expect(backend.framesSent).toBe(3);

    const back = Array.from({ length: 20 }, (_, i) => makeFrame(14 + i * 97, 10 + i));
    const bytes = concat(back.map(encodeStreamFrame));
    for (let o = 0; o < bytes.length; o += 777) socket.write(bytes.subarray(o, o + 777));
    await until(() => got.length === back.length, 'the backend to get 20 frames');
    got.forEach((f, i) => expect(sameBytes(f, back[i])).toBe(true));
    expect(backend.framesReceived).toBe(20);
  });

  it('reads nothing until something listens with onFrame', async () => {
    const { backend, socket } = await connected();
    socket.write(encodeStreamFrame(makeFrame(100)));
    await new Promise((resolve) => setTimeout(resolve, 30));
    const got: Uint8Array[] = [];
    backend.onFrame((f) => got.push(f));
    await until(() => got.length === 1, 'the frame');
  });

  it('pause() stops delivery (also mid-chunk) and the socket; resume() delivers the rest in order, never from inside resume()', async () => {
    const { backend, socket } = await connected();
    const got: Uint8Array[] = [];
    backend.onFrame((f) => {
      got.push(f);
      if (got.length === 3) backend.pause(); // from inside the callback, as the device does
    });
    const frames = Array.from({ length: 200 }, (_, i) => makeFrame(1514, i));
    socket.write(concat(frames.map(encodeStreamFrame)));
    await until(() => got.length === 3 && backend.isPaused, 'three frames');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(got.length).toBe(3);
    // What it holds while paused: one chunk's remainder at most (plus what Node's readable buffer has).
    expect(backend.bufferedBytes).toBeLessThanOrEqual(64 * 1024);
    backend.resume();
    expect(got.length).toBe(3);
    await until(() => got.length === 200, 'the rest');
    got.forEach((f, i) => expect(sameBytes(f, frames[i])).toBe(true));
  });

  it('send() returns false when the socket backs up and onWritable fires once the peer reads again', async () => {
    const { peer, backend, socket } = await connected();
    socket.pause(); // the peer stops reading
    let writable = 0;
    backend.onWritable(() => writable++);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 10_000; i++) {
      const f = makeFrame(65_000, i);
      frames.push(f);
      if (!backend.send(f)) break;
    }
    expect(frames.length).toBeLessThan(10_000);
    expect(backend.socket.writableLength).toBeGreaterThan(0);
    expect(writable).toBe(0);
    socket.resume();
    await until(() => writable === 1, 'onWritable');
    await until(() => peer.state.frames.length === frames.length, 'every frame at the peer');
    peer.state.frames.forEach((f, i) => expect(sameBytes(f, frames[i])).toBe(true));
  });

  it('a length prefix above 65553 closes the connection with an error', async () => {
    const { peer, backend, socket } = await connected();
    const got: Uint8Array[] = [];
    backend.onFrame((f) => got.push(f));
    const closes: Array<Error | undefined> = [];
    backend.onClose((e) => closes.push(e));
    socket.write(concat([encodeStreamFrame(makeFrame(100)), lengthPrefix(STREAM_MAX_FRAME + 1), new Uint8Array(1000)]));
    await until(() => closes.length === 1, 'the close');
    expect(got).toHaveLength(1);
    expect(closes[0]).toBeInstanceOf(StreamFrameError);
    expect(closes[0]!.message).toMatch(/65554 bytes, above the 65553-byte maximum/);
    expect(backend.closed).toBe(true);
    await until(() => peer.state.closed, 'the peer to see the close');
    expect(backend.send(makeFrame(60))).toBe(true); // dropped: nobody is made to wait
    expect(backend.framesDropped).toBe(1);
  });

  it('the peer closing ends in onClose() without an error; close() resolves', async () => {
    const { backend, socket } = await connected();
    const closes: Array<Error | undefined> = [];
    backend.onClose((e) => closes.push(e));
    socket.end();
    await until(() => closes.length === 1, 'the close');
    expect(closes).toEqual([undefined]);
    await backend.close();
  });

  it('close() destroys the connection; the peer sees it', async () => {
    const { peer, backend } = await connected();
    await backend.close();
    expect(backend.closed).toBe(true);
    await until(() => peer.state.closed, 'the peer to see the close');
  });

  it('connect errors name the path and the likely cause', async () => {
    const missing = join(dir, 'nothing.sock');
    await expect(connectStreamBackend(missing)).rejects.toThrow(`cannot connect to the stream socket ${missing}: no such socket`);
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    await expect(connectStreamBackend(stale)).rejects.toThrow(/connection refused/);
    await expect(connectStreamBackend('')).rejects.toThrow(TypeError);
  });

  it('wraps any connected socket', async () => {
    const { socket } = await connected();
    const other = new StreamBackend(socket);
    expect(other.closed).toBe(false);
  });
});

describe('a VirtioNetDevice over the stream backend', () => {
  it('guest frames reach the peer, peer frames reach the guest, and a guest without buffers pauses the peer without losing a frame', async () => {
    const { peer, backend, socket } = await connected();
    const device = new VirtioNetDevice({ backend, mac: '52:54:00:00:00:42', rxQueueFrames: 16 });
    cleanups.push(() => device.close());
    const drv = new VirtioTestDriver(device, { queueSize: 64, ramSize: 16 << 20 });
    drv.init();

    // Guest → peer.
    const out = Array.from({ length: 10 }, (_, i) => makeFrame(60 + i * 140, i));
    for (const f of out) drv.queue(NetQueue.TX).addChain([drv.readable(concat([new Uint8Array(NET_HDR.SIZE), f]))]);
    drv.notify(NetQueue.TX);
    await until(() => peer.state.frames.length === out.length, 'the peer to get the guest frames');
    peer.state.frames.forEach((f, i) => expect(sameBytes(f, out[i])).toBe(true));

    // Peer → guest, 300 frames while the guest has no buffers: the device holds 16 and pauses the backend.
    const frames = Array.from({ length: 300 }, (_, i) => makeFrame(100 + (i % 50) * 28, 1000 + i));
    socket.write(concat(frames.map(encodeStreamFrame)));
    await until(() => device.rxPaused, 'the device to pause the backend');
    expect(device.rxQueuedFrames).toBeLessThanOrEqual(16);
    const got: Uint8Array[] = [];
    for (let round = 0; round < 2000 && got.length < frames.length; round++) {
      while (drv.queue(NetQueue.RX).freeDescriptors > 0 && drv.queue(NetQueue.RX).outstanding < 8) drv.queue(NetQueue.RX).addChain([drv.writable(RX_BUF)]);
      drv.notify(NetQueue.RX);
      await new Promise((resolve) => setTimeout(resolve, 1));
      for (const g of groupReceived(drv.takeUsed(NetQueue.RX), (u) => drv.writtenBytes(u))) got.push(g.frame);
      expect(device.rxQueuedFrames).toBeLessThanOrEqual(16);
    }
    expect(got.length).toBe(frames.length);
    got.forEach((f, i) => expect(sameBytes(f, frames[i])).toBe(true));
    expect(device.stats.rxDropped).toBe(0);
    expect(device.stats.rxPauses).toBeGreaterThan(0);

    // The peer going away takes the link down.
    socket.destroy();
    await until(() => !device.linkUp, 'link down');
    expect(drv.configU16(6)).toBe(0);
  });
});
