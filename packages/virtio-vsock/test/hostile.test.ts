// The guest is hostile: every malformed packet, packets for no connection, protocol violations on a
// connection, bad rx/event buffers, and the caps (connections, queued RST replies, work per turn).
import { describe, expect, it } from 'vitest';
import { HOST_PORT_FIRST, PACKETS_PER_TURN, VSOCK_HDR, VsockConnection, VsockError, VsockOp, VsockShutdown } from '../src/index.js';
import { type Packet, type Rig, buffersOf, pattern, rig, text } from './helpers.js';

const ops = (packets: Packet[]) => packets.map((p) => p.op);

function listening(r: Rig, port = 1234) {
  const conns: VsockConnection[] = [];
  const closes: Array<Error | undefined> = [];
  r.device.listen(port, (c) => {
    conns.push(c);
    c.onData(() => {});
    c.onClose((e) => closes.push(e));
  });
  return { conns, closes };
}

/** Nothing threw out of the device and it never asked for a reset. */
function healthy(r: Rig): void {
  expect(r.drv.needsReset).toBe(false);
  expect(r.drv.warnings.filter((w) => w.includes('threw') || w.includes('needs reset'))).toEqual([]);
}

describe('malformed guest packets', () => {
  it('shorter than the header: dropped without an answer (no addresses to answer to)', () => {
    const r = rig();
    r.guest.postRx(2);
    r.guest.sendRaw(new Uint8Array(VSOCK_HDR.SIZE - 1));
    expect(r.guest.takeRx()).toEqual([]);
    expect(r.guest.takeTxUsed()).toEqual([{ id: expect.any(Number), len: 0 }]);
    expect(r.device.stats.dropped).toBe(1);
    expect(r.drv.warnings.some((w) => w.includes('shorter than the 44-byte header'))).toBe(true);
    healthy(r);
  });

  it('a header split over descriptors (and the payload in a third) is read as one packet', () => {
    const r = rig();
    const got: string[] = [];
    r.device.listen(1, (c) => {
      c.onData((b) => got.push(new TextDecoder().decode(b)));
    });
    r.guest.postRx(2);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1 }, undefined, { split: true });
    const hdr = r.guest.header({ op: VsockOp.RW, srcPort: 9, dstPort: 1 }, 5);
    r.guest.sendRaw([r.drv.readable(hdr.subarray(0, 10)), r.drv.readable(hdr.subarray(10)), r.drv.readable(text('hello'))]);
    expect(got).toEqual(['hello']);
    healthy(r);
  });

  it('bad type: RST (a bad-type RST is dropped, never answered)', () => {
    const r = rig();
    r.guest.postRx(4);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1, type: 2 });
    r.guest.send({ op: VsockOp.RST, srcPort: 9, dstPort: 1, type: 0 });
    const packets = r.guest.takeRx();
    expect(packets.map((p) => [p.op, p.srcPort, p.dstPort])).toEqual([[VsockOp.RST, 1, 9]]);
    expect(r.device.stats.malformed).toBe(1);
    healthy(r);
  });

  it('unknown ops: RST', () => {
    const r = rig();
    r.guest.postRx(4);
    for (const op of [0, 8, 0xffff]) r.guest.send({ op, srcPort: 9, dstPort: 1 });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST, VsockOp.RST, VsockOp.RST]);
    healthy(r);
  });

  it('wrong CIDs: dropped without an answer', () => {
    const r = rig();
    listening(r);
    r.guest.postRx(8);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1234, srcCid: 4 }); // not the guest
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1234, srcCidHigh: 1 }); // high half set
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1234, dstCid: 1 }); // local
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1234, dstCid: 3 }); // itself
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1234, dstCidHigh: 0x80000000 });
    r.guest.send({ op: VsockOp.RW, srcPort: 9, dstPort: 1234, srcCid: 0 }, text('x'));
    expect(r.guest.takeRx()).toEqual([]);
    expect(r.device.stats.dropped).toBe(6);
    expect(r.device.connectionCount).toBe(0);
    healthy(r);
  });

  it('len above 64 KiB or above the chain: RST; on a connection it is reset (EPROTO)', () => {
    const r = rig();
    const { closes } = listening(r);
    r.guest.postRx(8);
    // No connection: RST replies.
    r.guest.sendRaw(r.guest.header({ op: VsockOp.RW, srcPort: 9, dstPort: 1234, len: 64 * 1024 + 1 }));
    r.guest.sendRaw(r.guest.header({ op: VsockOp.RW, srcPort: 9, dstPort: 1234, len: 0xffffffff }));
    const short = new Uint8Array(VSOCK_HDR.SIZE + 10);
    short.set(r.guest.header({ op: VsockOp.RW, srcPort: 9, dstPort: 1234, len: 11 }));
    r.guest.sendRaw(short);
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST, VsockOp.RST, VsockOp.RST]);
    // On a connection.
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 10, dstPort: 1234 });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RESPONSE]);
    r.guest.sendRaw(r.guest.header({ op: VsockOp.RW, srcPort: 10, dstPort: 1234, len: 100 }));
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect((closes[0] as VsockError).code).toBe('EPROTO');
    expect(r.device.stats.malformed).toBe(4);
    healthy(r);
  });

  it('packets for no connection: RST, except RST itself', () => {
    const r = rig();
    r.guest.postRx(8);
    for (const op of [VsockOp.RW, VsockOp.SHUTDOWN, VsockOp.CREDIT_UPDATE, VsockOp.CREDIT_REQUEST, VsockOp.RESPONSE]) {
      r.guest.send({ op, srcPort: 9, dstPort: 1 }, op === VsockOp.RW ? text('data') : undefined);
    }
    r.guest.send({ op: VsockOp.RST, srcPort: 9, dstPort: 1 });
    expect(r.guest.takeRx().map((p) => [p.op, p.srcPort, p.dstPort])).toEqual(Array(5).fill([VsockOp.RST, 1, 9]));
    healthy(r);
  });

  it('protocol violations on a connection reset it: a second REQUEST, data after SHUTDOWN(SEND), SHUTDOWN before RESPONSE', async () => {
    const r = rig();
    const { closes } = listening(r);
    r.guest.postRx(16);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 2, dstPort: 1234 });
    r.guest.send({ op: VsockOp.SHUTDOWN, srcPort: 2, dstPort: 1234, flags: VsockShutdown.SEND });
    r.guest.send({ op: VsockOp.RW, srcPort: 2, dstPort: 1234 }, text('late'));
    expect(r.guest.takeRx().map((p) => [p.op, p.dstPort])).toEqual([
      [VsockOp.RESPONSE, 1],
      [VsockOp.RST, 1],
      [VsockOp.RESPONSE, 2],
      [VsockOp.RST, 2],
    ]);
    expect(closes.map((e) => (e as VsockError).code)).toEqual(['EPROTO', 'EPROTO']);
    const p = r.device.connect(3);
    r.flush();
    const [req] = r.guest.takeRx();
    r.guest.send({ op: VsockOp.SHUTDOWN, srcPort: 3, dstPort: req.srcPort, flags: 3 });
    await expect(p).rejects.toMatchObject({ code: 'EPROTO' });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    healthy(r);
  });

  it('an unexpected RESPONSE on an open connection is dropped; credit packets and flags of any value are harmless', () => {
    const r = rig();
    const { conns } = listening(r);
    r.guest.postRx(8);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    r.guest.takeRx();
    r.guest.send({ op: VsockOp.RESPONSE, srcPort: 1, dstPort: 1234 });
    r.guest.send({ op: VsockOp.CREDIT_UPDATE, srcPort: 1, dstPort: 1234, bufAlloc: 0xffffffff, fwdCnt: 0xffffffff });
    r.guest.send({ op: VsockOp.SHUTDOWN, srcPort: 1, dstPort: 1234, flags: 0xfffffffc }); // no known bit
    r.guest.send({ op: VsockOp.RW, srcPort: 1, dstPort: 1234, flags: 0xffffffff, bufAlloc: 0xffffffff }, text('ok'));
    expect(r.guest.takeRx()).toEqual([]);
    expect(conns[0].state).toBe('open');
    expect(conns[0].peerCredit).toBe(0xffffffff); // a guest may claim any buffer: it only hurts itself
    expect(r.drv.warnings.some((w) => w.includes('unexpected RESPONSE'))).toBe(true);
    healthy(r);
  });

  it('tx chains with device-writable buffers are read, never written', () => {
    const r = rig();
    r.guest.postRx(2);
    const hdr = r.guest.header({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1 });
    const w = r.drv.writable(64, 0x5a);
    r.guest.sendRaw([r.drv.readable(hdr), w]);
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect([...r.drv.bytes(w.addr, 64)].every((b) => b === 0x5a)).toBe(true);
    expect(r.guest.takeTxUsed().map((u) => u.len)).toEqual([0]);
    healthy(r);
  });
});

describe('bad rx and event buffers', () => {
  it('an rx buffer smaller than a header, or with device-readable parts, comes back unused', () => {
    const r = rig();
    r.guest.postRx(1, VSOCK_HDR.SIZE - 1);
    r.guest.postRxChain([r.drv.readable(8), r.drv.writable(4096)]);
    r.guest.postRx(1, VSOCK_HDR.SIZE); // exactly a header: fine for control packets
    r.guest.send({ op: VsockOp.RW, srcPort: 9, dstPort: 1 }, text('x'));
    const used = r.guest.takeRxUsed();
    expect(used.map((u) => u.len)).toEqual([0, 0, VSOCK_HDR.SIZE]);
    expect(r.drv.warnings.filter((w) => w.includes('returned unused')).length).toBe(2);
    healthy(r);
  });

  it('a header-only rx buffer never carries data: the connection sends a credit update instead', () => {
    const r = rig();
    const { conns } = listening(r);
    r.guest.postRx(1);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    r.guest.takeRx();
    conns[0].write(text('payload'));
    r.guest.postRx(1, VSOCK_HDR.SIZE);
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.len])).toEqual([[VsockOp.CREDIT_UPDATE, 0]]);
    r.guest.postRx(1);
    r.flush();
    expect(r.guest.takeRx().map((p) => [p.op, p.len])).toEqual([[VsockOp.RW, 7]]);
  });

  it('writes only into the written prefix of rx buffers', () => {
    const r = rig();
    r.guest.postRx(1, 4096);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 9, dstPort: 1 });
    const [u] = r.guest.takeRxUsed();
    expect(u.len).toBe(VSOCK_HDR.SIZE);
    const [buf] = buffersOf(u);
    expect([...r.drv.bytes(buf.addr + VSOCK_HDR.SIZE, buf.len - VSOCK_HDR.SIZE)].every((b) => b === 0xee)).toBe(true);
  });
});

describe('caps', () => {
  it('at most maxConnections: further REQUESTs get RST, connect() rejects with EAGAIN', async () => {
    const r = rig({ maxConnections: 3 });
    listening(r);
    r.guest.postRx(8);
    for (let port = 1; port <= 4; port++) r.guest.send({ op: VsockOp.REQUEST, srcPort: port, dstPort: 1234 });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RESPONSE, VsockOp.RESPONSE, VsockOp.RESPONSE, VsockOp.RST]);
    expect(r.device.connectionCount).toBe(3);
    expect(r.device.stats.refusedAtLimit).toBe(1);
    await expect(r.device.connect(5)).rejects.toMatchObject({ code: 'EAGAIN' });
    // One ends: room again.
    r.guest.send({ op: VsockOp.RST, srcPort: 1, dstPort: 1234 });
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 4, dstPort: 1234 });
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RESPONSE]);
    healthy(r);
  });

  it('connections that owe the guest an RST hold their slot until it is sent', async () => {
    const r = rig({ maxConnections: 1 });
    const { conns } = listening(r);
    r.guest.postRx(1);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    r.guest.takeRx();
    conns[0].destroy();
    expect(r.device.connectionCount).toBe(1);
    await expect(r.device.connect(5)).rejects.toMatchObject({ code: 'EAGAIN' });
    r.guest.postRx(1);
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
    expect(r.device.connectionCount).toBe(0);
  });

  it('at most maxPendingRst RST replies wait for rx buffers; then tx waits too, and nothing is lost', () => {
    const r = rig({ maxPendingRst: 4 });
    for (let i = 0; i < 10; i++) r.guest.send({ op: VsockOp.RW, srcPort: 100 + i, dstPort: 1 }, text('?'), { notify: false });
    r.drv.notify(1);
    expect(r.guest.takeTxUsed().length).toBe(4);
    expect(r.device.pendingRstCount).toBe(4);
    expect(r.device.txWaitingForRx).toBe(true);
    r.flush();
    expect(r.guest.takeTxUsed().length).toBe(0); // still blocked: no rx buffers
    r.guest.postRx(20);
    r.flush();
    expect(r.guest.takeTxUsed().length).toBe(6);
    const rsts = r.guest.takeRx();
    expect(rsts.map((p) => p.dstPort)).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    expect(r.device.pendingRstCount).toBe(0);
    expect(r.device.txWaitingForRx).toBe(false);
    healthy(r);
  });

  it(`takes at most ${PACKETS_PER_TURN} tx packets and writes at most ${PACKETS_PER_TURN} rx packets per turn`, () => {
    const r = rig({}, { queueSize: 256 });
    for (let i = 0; i < 100; i++) r.guest.send({ op: VsockOp.RW, srcPort: i, dstPort: 1 }, undefined, { notify: false });
    r.drv.notify(1);
    expect(r.guest.takeTxUsed().length).toBe(PACKETS_PER_TURN);
    expect(r.time.runDeferred(1)).toBe(1);
    expect(r.guest.takeTxUsed().length).toBe(100 - PACKETS_PER_TURN);
    expect(r.device.pendingRstCount).toBe(100);
    r.guest.postRx(120, VSOCK_HDR.SIZE, false);
    r.drv.notify(0);
    expect(r.guest.takeRx().length).toBe(PACKETS_PER_TURN);
    r.time.runDeferred(1);
    expect(r.guest.takeRx().length).toBe(100 - PACKETS_PER_TURN);
    healthy(r);
  });

  it('host writes beyond sendQueueLimit destroy the connection with ENOBUFS', () => {
    const r = rig({ sendHighWaterMark: 100, sendQueueLimit: 1000 });
    const { conns, closes } = listening(r);
    r.guest.postRx(1);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234, bufAlloc: 0 });
    r.guest.takeRx();
    expect(conns[0].write(pattern(100))).toBe(false);
    expect(conns[0].write(pattern(900))).toBe(false);
    expect(conns[0].writableLength).toBe(1000);
    expect(conns[0].write(pattern(1))).toBe(false);
    expect((closes[0] as VsockError).code).toBe('ENOBUFS');
    expect(conns[0].writableLength).toBe(0);
    r.guest.postRx(1);
    r.flush();
    expect(ops(r.guest.takeRx())).toEqual([VsockOp.RST]);
  });

  it('one-byte packets are coalesced on the host: the receive buffer holds bytes, not packets', () => {
    const r = rig({ bufAlloc: 4096 });
    const { conns } = listening(r);
    r.guest.postRx(1);
    r.guest.send({ op: VsockOp.REQUEST, srcPort: 1, dstPort: 1234 });
    conns[0].pause();
    for (let i = 0; i < 200; i++) {
      r.guest.send({ op: VsockOp.RW, srcPort: 1, dstPort: 1234 }, Uint8Array.of(i));
      r.guest.takeTxUsed();
    }
    expect(conns[0].readableLength).toBe(200);
    const pieces: Uint8Array[] = [];
    conns[0].onData((b) => pieces.push(b));
    conns[0].resume();
    expect(pieces.length).toBe(1);
    expect(pieces[0]).toEqual(Uint8Array.from({ length: 200 }, (_, i) => i));
  });

  it('a host-initiated port range is reused round robin and never collides with a live connection', async () => {
    const r = rig();
    r.guest.postRx(8);
    const p1 = r.device.connect(7);
    r.flush();
    const [req] = r.guest.takeRx();
    expect(req.srcPort).toBe(HOST_PORT_FIRST);
    r.guest.send({ op: VsockOp.RESPONSE, srcPort: 7, dstPort: HOST_PORT_FIRST });
    await p1;
    const p2 = r.device.connect(7);
    r.flush();
    expect(r.guest.takeRx()[0].srcPort).toBe(HOST_PORT_FIRST + 1);
    void p2.catch(() => {});
  });
});
