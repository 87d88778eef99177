// The device through the real virtio-mmio transport and split queues, with a scripted guest: the
// handshakes both ways, data, half-close, close, RST, credit both ways, transport reset, device reset.
import { Feature, MmioReg } from '@hype/virtio';
import { VirtioTestDriver } from '@hype/virtio/testing';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BUF_ALLOC,
  HOST_PORT_FIRST,
  MAX_PACKET_PAYLOAD,
  VSOCK_HDR,
  VsockConnection,
  VsockDevice,
  VsockError,
  VsockEventId,
  VsockOp,
  VsockShutdown,
} from '../src/index.js';
import { type Packet, type Rig, concat, pattern, rig, sameBytes, str, text } from './helpers.js';

const ops = (packets: Packet[]) => packets.map((p) => p.op);

/** A guest connection from guest port 5000 to host port 1234, accepted; the RESPONSE consumed. */
function accepted(r: Rig, options: { bufAlloc?: number; hostPort?: number; guestPort?: number } = {}) {
  const hostPort = options.hostPort ?? 1234;
  const guestPort = options.guestPort ?? 5000;
  let conn: VsockConnection | undefined;
  const received: Uint8Array[] = [];
  let ended = 0;
  const closes: Array<Error | undefined> = [];
  r.device.listen(hostPort, (c) => {
    conn = c;
    c.onData((b) => received.push(b.slice()));
    c.onEnd(() => ended++);
    c.onClose((e) => closes.push(e));
  });
  r.guest.postRx(8);
  r.guest.send({ op: VsockOp.REQUEST, srcPort: guestPort, dstPort: hostPort, bufAlloc: options.bufAlloc ?? 65536 });
  const [response] = r.guest.takeRx();
  expect(response.op).toBe(VsockOp.RESPONSE);
  const send = (op: number, fields: Record<string, number> = {}, payload?: Uint8Array) =>
    r.guest.send({ op, srcPort: guestPort, dstPort: hostPort, bufAlloc: options.bufAlloc ?? 65536, ...fields }, payload);
  return {
    conn: conn!,
    received,
    closes,
    get ended() {
      return ended;
    },
    send,
  };
}

describe('virtio-vsock device basics', () => {
  it('is device 19 with rx/tx/event queues, no feature bits beyond VERSION_1, and guest_cid in config', () => {
    const r = rig({ guestCid: 0x12345678 });
    expect(r.drv.reg(MmioReg.DEVICE_ID)).toBe(19);
    const offered = r.drv.offeredFeatures();
    // Device-specific bits 0..27: none (stream only, no VIRTIO_VSOCK_F_SEQPACKET).
    expect(offered & ((1n << 28n) - 1n)).toBe(0n);
    expect((offered >> BigInt(Feature.VERSION_1)) & 1n).toBe(1n);
    expect(r.device.queueMaxSizes).toEqual([256, 256, 256]);
    expect(r.drv.configU64(0)).toBe(0x12345678n);
    r.drv.writeConfig(0, 4, 99);
    expect(r.drv.configU64(0)).toBe(0x12345678n);
    expect(r.drv.warnings.some((w) => w.includes('read-only config'))).toBe(true);
  });

  it('checks its options', () => {
    for (const guestCid of [0, 1, 2, 0xffffffff, 2 ** 32, 3.5, -1]) expect(() => new VsockDevice({ guestCid })).toThrow(RangeError);
    expect(new VsockDevice({ guestCid: 3 }).guestCid).toBe(3);
    expect(new VsockDevice({ guestCid: 0xfffffffe }).guestCid).toBe(0xfffffffe);
    expect(new VsockDevice().guestCid).toBe(3);
    expect(() => new VsockDevice({ queueSize: 3 })).toThrow(RangeError);
    expect(() => new VsockDevice({ bufAlloc: 100 })).toThrow(RangeError);
    expect(() => new VsockDevice({ maxConnections: 0 })).toThrow(RangeError);
    expect(() => new VsockDevice({ sendQueueLimit: 10, sendHighWaterMark: 20 })).toThrow(RangeError);
    expect(() => new VsockDevice({ closeTimeoutMs: 0 })).toThrow(RangeError);
    const d = new VsockDevice();
    expect(() => d.listen(-1, () => {})).toThrow(RangeError);
    expect(() => d.listen(2 ** 32, () => {})).toThrow(RangeError);
    const off = d.listen(7, () => {});
    expect(() => d.listen(7, () => {})).toThrow(/already has a listener/);
    off();
    expect(() => d.listen(7, () => {})).not.toThrow();
  });

  it('needs rx and tx enabled', () => {
    const drv = new VirtioTestDriver(new VsockDevice(), { queueSizes: [64] });
    drv.bringUp();
    expect(drv.needsReset).toBe(true);
    expect(drv.warnings.some((w) => w.includes('needs its rx and tx queues'))).toBe(true);
  });
});

describe('guest-initiated connections', () => {
  it('REQUEST to a listening port gets RESPONSE; data both ways; half-close; RST after the full shutdown', () => {
    const r = rig();
    const c = accepted(r);
    expect(c.conn.initiator).toBe('guest');
    expect(c.conn.localPort).toBe(1234);
    expect(c.conn.remotePort).toBe(5000);
    expect(c.conn.state).toBe('open');

    c.send(VsockOp.RW, {}, text('hello'));
    expect(str(concat(c.received))).toBe('hello');
    expect(c.conn.forwardCount).toBe(5);

    expect(c.conn.write(text('world'))).toBe(true);
    r.flush();
    const [data] = r.guest.takeRx();
    expect(data).toMatchObject({ op: VsockOp.RW, srcCid: 2, dstCid: 3, srcPort: 1234, dstPort: 5000, len: 5, type: 1, bufAlloc: DEFAULT_BUF_ALLOC, fwdCnt: 5 });
    expect(str(data.payload)).toBe('world');

    c.send(VsockOp.SHUTDOWN, { flags: VsockShutdown.SEND });
    expect(c.ended).toBe(1);
    expect(c.conn.remoteEnded).toBe(true);
    expect(c.conn.write(text('more'))).toBe(true); // the host may still send
    c.conn.end();
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.flags, str(p.payload)])).toEqual([
      [VsockOp.RW, 0, 'more'],
      [VsockOp.SHUTDOWN, VsockShutdown.SEND, ''],
    ]);
    expect(c.conn.writable).toBe(false);
    expect(c.closes).toEqual([]);

    c.send(VsockOp.SHUTDOWN, { flags: VsockShutdown.BOTH });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect(c.closes).toEqual([undefined]);
    expect(c.conn.state).toBe('closed');
    expect(r.device.connectionCount).toBe(0);
    expect(r.drv.warnings).toEqual([]);
  });

  it('answers REQUEST with RST when nothing listens, and routes VMADDR_PORT_ANY', () => {
    const r = rig();
    r.guest.postRx(4);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 77, dstPort: 9 });
    const [rst] = r.guest.takeRx();
    expect(rst).toMatchObject({ op: VsockOp.RST, srcCid: 2, dstCid: 3, srcPort: 9, dstPort: 77, len: 0, bufAlloc: 0, fwdCnt: 0 });
    const seen: number[] = [];
    r.device.listen(0xffffffff, (conn) => {
      seen.push(conn.localPort);
    });
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 78, dstPort: 9 });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RESPONSE]);
    expect(seen).toEqual([9]);
    expect(r.device.connectionCount).toBe(1);
  });

  it('a listener that returns false or throws refuses with RST', () => {
    const r = rig();
    r.device.listen(1, () => false);
    r.device.listen(2, () => {
      throw new Error('boom');
    });
    r.guest.postRx(4);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 10, dstPort: 1 });
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 10, dstPort: 2 });
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST, VsockOp.RST]);
    expect(r.device.connectionCount).toBe(0);
    expect(r.drv.warnings.some((w) => w.includes('boom'))).toBe(true);
    expect(r.drv.needsReset).toBe(false);
  });

  it('an asynchronous listener answers when its promise settles, or is refused after acceptTimeoutMs', async () => {
    const r = rig({ acceptTimeoutMs: 1000 });
    let resolveAccept!: (ok: boolean) => void;
    r.device.listen(1, () => new Promise<boolean>((resolve) => (resolveAccept = resolve)));
    const closes: Array<Error | undefined> = [];
    r.device.listen(2, (conn) => {
      conn.onClose((e) => closes.push(e));
      return new Promise<void>(() => {});
    });
    r.guest.postRx(4);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 10, dstPort: 1 });
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 11, dstPort: 2 });
    r.flush();
    expect(r.guest.takeRx()).toEqual([]);
    expect(r.device.connectionCount).toBe(2);
    resolveAccept(true);
    await Promise.resolve();
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.dstPort])).toEqual([[VsockOp.RESPONSE, 10]]);
    r.time.advance(1000);
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.dstPort])).toEqual([[VsockOp.RST, 11]]);
    expect((closes[0] as VsockError).code).toBe('ETIMEDOUT');
    expect(r.device.connectionCount).toBe(1);
  });

  it('a guest RST on an open connection closes it with ECONNRESET; the host destroy() sends RST', () => {
    const r = rig();
    const a = accepted(r);
    a.send(VsockOp.RST);
    expect(r.guest.takeRx()).toEqual([]); // never an RST for an RST
    expect((a.closes[0] as VsockError).code).toBe('ECONNRESET');
    expect(r.device.connectionCount).toBe(0);

    const b = accepted(r, { hostPort: 1235, guestPort: 5001 });
    const err = new Error('host gave up');
    b.conn.write(text('dropped'));
    b.conn.destroy(err);
    expect(b.closes).toEqual([err]);
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.dstPort])).toEqual([[VsockOp.RST, 5001]]);
    expect(r.device.connectionCount).toBe(0);
  });

  it('close(): queued bytes, then SHUTDOWN(RCV|SEND); the guest RST ends it cleanly', () => {
    const r = rig();
    const c = accepted(r);
    c.conn.write(text('bye'));
    c.conn.close();
    expect(c.conn.state).toBe('closing');
    expect(c.conn.writable).toBe(false);
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.flags])).toEqual([
      [VsockOp.RW, 0],
      [VsockOp.SHUTDOWN, VsockShutdown.BOTH],
    ]);
    c.send(VsockOp.RST);
    expect(c.closes).toEqual([undefined]);
    expect(r.time.pendingTimers).toBe(0);
  });

  it('close(): without the guest RST, the host sends RST after closeTimeoutMs and forgets the connection', () => {
    const r = rig({ closeTimeoutMs: 2000 });
    const c = accepted(r);
    c.conn.close();
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.SHUTDOWN]);
    r.time.advance(1999);
    r.flush();
    expect(r.guest.takeRx()).toEqual([]);
    r.time.advance(1);
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect(c.closes).toEqual([undefined]);
    expect(r.device.connectionCount).toBe(0);
  });

  it('the guest shutting down receiving discards queued host bytes and stops writes (a waiting writer gets drain)', () => {
    const r = rig({ sendHighWaterMark: 4 });
    const c = accepted(r, { bufAlloc: 0 });
    let drains = 0;
    c.conn.onDrain(() => drains++);
    expect(c.conn.write(text('never sent'))).toBe(false);
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.CREDIT_REQUEST]); // no credit: asks once
    c.send(VsockOp.SHUTDOWN, { flags: VsockShutdown.RCV });
    expect(drains).toBe(1);
    expect(c.conn.writableLength).toBe(0);
    expect(c.conn.writable).toBe(false);
    expect(c.conn.write(text('x'))).toBe(false);
    r.flush();
    expect(r.guest.takeRx()).toEqual([]);
  });

  it('guest data waiting for a paused host is still delivered after the guest closed both ways', () => {
    const r = rig();
    const c = accepted(r);
    c.conn.pause();
    c.send(VsockOp.RW, {}, text('late'));
    c.send(VsockOp.SHUTDOWN, { flags: VsockShutdown.BOTH });
    expect(r.guest.takeRx()).toEqual([]); // the host has not read it: no RST yet
    expect(c.conn.readableLength).toBe(4);
    c.conn.resume();
    expect(str(concat(c.received))).toBe('late');
    expect(c.ended).toBe(1);
    expect(c.closes).toEqual([undefined]);
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect(r.device.connectionCount).toBe(0);
  });

  it('a clean guest RST keeps undelivered data for the host, counted against the limit until read', () => {
    const r = rig();
    const c = accepted(r);
    c.conn.pause();
    c.send(VsockOp.RW, {}, text('kept'));
    c.send(VsockOp.SHUTDOWN, { flags: VsockShutdown.BOTH });
    c.send(VsockOp.RST); // the guest's own close timeout fired before the host read
    expect(r.guest.takeRx()).toEqual([]);
    expect(r.device.connectionCount).toBe(1);
    c.conn.resume();
    expect(str(concat(c.received))).toBe('kept');
    expect(c.closes).toEqual([undefined]);
    expect(r.device.connectionCount).toBe(0);
  });
});

describe('host-initiated connections', () => {
  it('connect() sends REQUEST from a host port in [2^30, 2^31); RESPONSE resolves it', async () => {
    const r = rig();
    r.guest.postRx(4);
    const p = r.device.connect(52);
    r.flush();
    const [req] = r.guest.takeRx();
    expect(req).toMatchObject({ op: VsockOp.REQUEST, srcCid: 2, dstCid: 3, srcPort: HOST_PORT_FIRST, dstPort: 52, bufAlloc: DEFAULT_BUF_ALLOC, fwdCnt: 0 });
    r.guest.send({ op: VsockOp.RESPONSE, srcPort: 52, dstPort: req.srcPort, bufAlloc: 4096 });
    const conn = await p;
    expect(conn.initiator).toBe('host');
    expect(conn.localPort).toBe(HOST_PORT_FIRST);
    expect(conn.peerCredit).toBe(4096);
    conn.write(text('hi'));
    r.flush();
    expect(r.guest.takeRx().map((x) => [x.op, str(x.payload)])).toEqual([[VsockOp.RW, 'hi']]);
    // The next connection gets the next port.
    const p2 = r.device.connect(52);
    r.flush();
    expect(r.guest.takeRx()[0].srcPort).toBe(HOST_PORT_FIRST + 1);
    r.guest.send({ op: VsockOp.RST, srcPort: 52, dstPort: HOST_PORT_FIRST + 1 });
    await expect(p2).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('rejects with ETIMEDOUT (and RSTs the guest) without an answer; ENOTCONN before the driver runs', async () => {
    const r = rig({ connectTimeoutMs: 500 });
    r.guest.postRx(4);
    const p = r.device.connect(52);
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.REQUEST]);
    r.time.advance(500);
    r.flush();
    await expect(p).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect(r.device.connectionCount).toBe(0);

    await expect(new VsockDevice().connect(1)).rejects.toMatchObject({ code: 'ENOTCONN' });
    await expect(r.device.connect(-1)).rejects.toBeInstanceOf(RangeError);
    // A RESPONSE after the timeout belongs to no connection: RST.
    r.guest.send({ op: VsockOp.RESPONSE, srcPort: 52, dstPort: HOST_PORT_FIRST });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
  });

  it('a REQUEST still waiting for an rx buffer is withdrawn silently on timeout', async () => {
    const r = rig({ connectTimeoutMs: 100 });
    const p = r.device.connect(52);
    r.flush();
    r.time.advance(100);
    await expect(p).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    r.guest.postRx(2);
    r.flush();
    expect(r.guest.takeRx()).toEqual([]);
  });

  it('data before RESPONSE is a protocol violation: RST, the connect rejects with EPROTO', async () => {
    const r = rig();
    r.guest.postRx(4);
    const p = r.device.connect(52);
    r.flush();
    r.guest.takeRx();
    r.guest.send({ op: VsockOp.RW, srcPort: 52, dstPort: HOST_PORT_FIRST }, text('early'));
    await expect(p).rejects.toMatchObject({ code: 'EPROTO' });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
  });
});

describe('credit: host to guest', () => {
  it('never sends more than the guest credit; asks with CREDIT_REQUEST once; resumes on CREDIT_UPDATE', () => {
    const r = rig();
    const c = accepted(r, { bufAlloc: 1000 });
    const data = pattern(3000);
    c.conn.write(data);
    r.guest.postRx(16);
    r.flush();
    let packets = r.guest.takeRx();
    expect(ops(packets)).toEqual([VsockOp.RW, VsockOp.CREDIT_REQUEST]);
    expect(packets[0].len).toBe(1000);
    expect(c.conn.peerCredit).toBe(0);
    r.flush();
    expect(r.guest.takeRx()).toEqual([]); // no second CREDIT_REQUEST without news from the guest
    const got = [packets[0].payload];

    // The guest consumed 600: 600 more may go.
    c.send(VsockOp.CREDIT_UPDATE, { bufAlloc: 1000, fwdCnt: 600 });
    r.flush();
    packets = r.guest.takeRx();
    expect(packets.map((p) => [p.op, p.len])).toEqual([
      [VsockOp.RW, 600],
      [VsockOp.CREDIT_REQUEST, 0],
    ]);
    got.push(packets[0].payload);
    // A bigger buffer: everything left goes.
    c.send(VsockOp.CREDIT_UPDATE, { bufAlloc: 10_000, fwdCnt: 1600 });
    r.flush();
    packets = r.guest.takeRx();
    expect(packets.map((p) => [p.op, p.len])).toEqual([[VsockOp.RW, 1400]]);
    got.push(packets[0].payload);
    expect(sameBytes(concat(got), data)).toBe(true);
  });

  it('a packet carries at most the rx buffer and 64 KiB of payload', () => {
    const r = rig();
    const c = accepted(r, { bufAlloc: 1 << 20 });
    c.conn.write(pattern(200_000));
    r.guest.postRx(1, VSOCK_HDR.SIZE + 100);
    r.guest.postRx(1, VSOCK_HDR.SIZE + 128 * 1024);
    r.flush();
    // The 7 rx buffers left from the handshake (4 KiB each) first, then the two posted here.
    expect(r.guest.takeRx().map((p) => p.len)).toEqual([4096, 4096, 4096, 4096, 4096, 4096, 4096, 100, MAX_PACKET_PAYLOAD]);
  });

  it('write() returns false at the high-water mark and calls onDrain when the guest took enough', () => {
    const r = rig({ sendHighWaterMark: 1000 });
    const c = accepted(r, { bufAlloc: 100_000 });
    let drains = 0;
    c.conn.onDrain(() => drains++);
    expect(c.conn.write(pattern(999))).toBe(true);
    expect(c.conn.write(pattern(1))).toBe(false);
    expect(c.conn.writableLength).toBe(1000);
    r.guest.postRx(1);
    r.flush();
    expect(drains).toBe(1);
    expect(c.conn.writableLength).toBe(0);
  });
});

describe('credit: guest to host', () => {
  it('every packet advertises buf_alloc and fwd_cnt; CREDIT_REQUEST gets CREDIT_UPDATE', () => {
    const r = rig();
    const c = accepted(r);
    c.send(VsockOp.RW, {}, pattern(300));
    c.send(VsockOp.CREDIT_REQUEST);
    const [update] = r.guest.takeRx();
    expect(update).toMatchObject({ op: VsockOp.CREDIT_UPDATE, bufAlloc: DEFAULT_BUF_ALLOC, fwdCnt: 300, len: 0 });
  });

  it('sends CREDIT_UPDATE once a quarter of the buffer was consumed since the last advertisement', () => {
    const r = rig();
    const c = accepted(r);
    const chunk = 4096;
    for (let i = 0; i < 15; i++) c.send(VsockOp.RW, {}, pattern(chunk, i));
    expect(r.guest.takeRx()).toEqual([]);
    c.send(VsockOp.RW, {}, pattern(chunk, 15));
    const [update] = r.guest.takeRx();
    expect(update).toMatchObject({ op: VsockOp.CREDIT_UPDATE, fwdCnt: 16 * chunk });
  });

  it('a paused host keeps at most buf_alloc bytes: the guest that sends beyond its credit is reset (EPROTO)', () => {
    const r = rig({ bufAlloc: 8192 });
    const c = accepted(r);
    c.conn.pause();
    c.send(VsockOp.RW, {}, pattern(4096));
    c.send(VsockOp.RW, {}, pattern(4096, 1));
    expect(c.conn.readableLength).toBe(8192);
    expect(r.guest.takeRx()).toEqual([]);
    c.send(VsockOp.RW, {}, pattern(1));
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect((c.closes[0] as VsockError).code).toBe('EPROTO');
    expect(c.conn.readableLength).toBe(0);
    expect(r.device.stats.creditOverruns).toBe(1);
    expect(r.drv.warnings.some((w) => w.includes('exceed the credit'))).toBe(true);
  });

  it('resume() delivers what waited and advertises the freed space', () => {
    const r = rig({ bufAlloc: 8192 });
    const c = accepted(r);
    c.conn.pause();
    c.send(VsockOp.RW, {}, pattern(8192));
    c.conn.resume();
    expect(concat(c.received).length).toBe(8192);
    r.flush();
    const [update] = r.guest.takeRx();
    expect(update).toMatchObject({ op: VsockOp.CREDIT_UPDATE, fwdCnt: 8192 });
    // The guest may now send 8192 more.
    c.conn.pause();
    c.send(VsockOp.RW, {}, pattern(8192));
    expect(c.closes).toEqual([]);
  });

  it('data is kept until a data callback exists', () => {
    const r = rig();
    let conn!: VsockConnection;
    r.device.listen(1, (c) => {
      conn = c;
    });
    r.guest.postRx(2);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 2, dstPort: 1 });
    r.guest.send({ op: VsockOp.RW, srcPort: 2, dstPort: 1 }, text('early bytes'));
    expect(conn.readableLength).toBe(11);
    const got: string[] = [];
    conn.onData((b) => got.push(str(b)));
    r.flush();
    expect(got).toEqual(['early bytes']);
  });
});

describe('resets', () => {
  it('transportReset(): TRANSPORT_RESET on the event queue (held until a buffer comes), connections end with ECONNRESET', async () => {
    const r = rig();
    const a = accepted(r);
    const pending = r.device.connect(99);
    const before = r.drv.interrupts;
    r.device.transportReset({ guestCid: 42 });
    expect((a.closes[0] as VsockError).code).toBe('ECONNRESET');
    await expect(pending).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(r.device.connectionCount).toBe(0);
    expect(r.device.eventPendingDelivery).toBe(true);
    expect(r.drv.configU64(0)).toBe(42n);
    expect(r.drv.interrupts).toBeGreaterThan(before); // configuration change
    r.guest.postEvent(2);
    expect(r.guest.takeEvents()).toEqual([VsockEventId.TRANSPORT_RESET]);
    expect(r.device.eventPendingDelivery).toBe(false);
    // Listeners stay; the guest uses its new CID.
    r.guest.cid = 42;
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 6000, dstPort: 1234 });
    const [resp] = r.guest.takeRx();
    expect(resp).toMatchObject({ op: VsockOp.RESPONSE, dstCid: 42 });
  });

  it('a posted event buffer gets the event at once; a too small one is returned unused', () => {
    const r = rig();
    r.guest.postEvent(1, 2);
    r.guest.postEvent(1);
    r.device.transportReset();
    expect(r.guest.takeEvents()).toEqual([-1, VsockEventId.TRANSPORT_RESET]);
    expect(() => r.device.transportReset({ guestCid: 2 })).toThrow(RangeError);
  });

  it('a device reset ends every connection with ECONNRESET; after a new bring-up the device works again', async () => {
    const r = rig();
    const a = accepted(r);
    const pending = r.device.connect(7);
    r.drv.reset();
    expect((a.closes[0] as VsockError).code).toBe('ECONNRESET');
    await expect(pending).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(r.device.isActive).toBe(false);
    await expect(r.device.connect(7)).rejects.toMatchObject({ code: 'ENOTCONN' });
    r.drv.init();
    r.guest.postRx(2);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 5000, dstPort: 1234 });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RESPONSE]);
    expect(r.drv.needsReset).toBe(false);
  });

  it('close() ends connections and refuses connect()', async () => {
    const r = rig();
    const a = accepted(r);
    r.device.close();
    expect((a.closes[0] as VsockError).code).toBe('ECONNRESET');
    await expect(r.device.connect(1)).rejects.toMatchObject({ code: 'ENOTCONN' });
  });
});
