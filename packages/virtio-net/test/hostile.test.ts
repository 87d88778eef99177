// The guest is hostile: every malformed transmit and receive chain, a ring that never refills while the
// network keeps sending, buffers that can never hold a frame, and the per-turn bounds. Nothing throws,
// nothing asks for a reset, the guest gets its descriptors back, and what the host holds stays bounded.
import { MmioReg } from '@hype/virtio';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RX_QUEUE_BYTES,
  DEFAULT_RX_QUEUE_FRAMES,
  NET_HDR,
  NetHdrFlag,
  NetHdrGso,
  NetQueue,
  RX_CHAINS_PER_TURN,
  encodeNetHeader,
} from '../src/index.js';
import { RX_BUF, concat, healthy, makeFrame, rig, sameBytes } from './helpers.js';

describe('malformed transmit chains: returned with length 0, counted, never handed to the backend', () => {
  it('shorter than the 12-byte header', () => {
    const r = rig();
    r.transmitRaw([r.drv.readable(new Uint8Array(5))]);
    r.transmitRaw([r.drv.readable(new Uint8Array(6)), r.drv.readable(new Uint8Array(5))]);
    expect(r.drv.takeUsed(NetQueue.TX).map((u) => u.len)).toEqual([0, 0]);
    expect(r.backend.sent).toHaveLength(0);
    expect(r.device.stats).toMatchObject({ txDropped: 2, txMalformed: 2 });
    expect(r.warnings.filter((w) => w.includes('less than the 12-byte header'))).toHaveLength(2);
    expect(healthy(r)).toBe(true);
  });

  it('a header and no frame, or less than an Ethernet header', () => {
    const r = rig();
    r.transmitRaw([r.drv.readable(new Uint8Array(12))]);
    r.transmit(new Uint8Array(13));
    expect(r.backend.sent).toHaveLength(0);
    expect(r.device.stats.txMalformed).toBe(2);
    expect(r.warnings.filter((w) => w.includes('shorter than an Ethernet header'))).toHaveLength(2);
  });

  it('a frame above mtu + 18 (VLAN included), also one that claims megabytes', () => {
    const r = rig();
    r.transmit(makeFrame(1519));
    // Four descriptors over the same 1 MiB of guest RAM: 4 MiB readable, nothing allocated for it.
    const big = r.drv.alloc(1 << 20);
    r.transmitRaw(Array.from({ length: 4 }, () => ({ addr: big, len: 1 << 20, writable: false })));
    expect(r.backend.sent).toHaveLength(0);
    expect(r.drv.takeUsed(NetQueue.TX).map((u) => u.len)).toEqual([0, 0]);
    expect(r.warnings.filter((w) => w.includes('above the 1518-byte maximum'))).toHaveLength(2);
    r.transmit(makeFrame(1518)); // the largest allowed still goes
    expect(r.backend.sent.map((f) => f.length)).toEqual([1518]);
  });

  it('write-only descriptors, or writable ones after the frame (nothing written into them)', () => {
    const r = rig();
    const w = r.drv.writable(100, 0xee);
    r.transmitRaw([w]);
    const frameBytes = concat([encodeNetHeader({}), makeFrame(60)]);
    const w2 = r.drv.writable(10, 0xee);
    r.transmitRaw([r.drv.readable(frameBytes), w2]);
    r.transmitRaw([r.drv.readable(frameBytes), r.drv.writable(0)]);
    expect(r.drv.takeUsed(NetQueue.TX).map((u) => u.len)).toEqual([0, 0, 0]);
    expect(r.backend.sent).toHaveLength(0);
    expect(r.drv.bytes(w.addr, w.len).every((b) => b === 0xee)).toBe(true);
    expect(r.drv.bytes(w2.addr, w2.len).every((b) => b === 0xee)).toBe(true);
    expect(r.warnings.filter((x) => x.includes('device-writable descriptors'))).toHaveLength(3);
  });

  it('offloads that were never negotiated: NEEDS_CSUM, any gso_type', () => {
    const r = rig();
    r.transmit(makeFrame(60), { header: { flags: NetHdrFlag.NEEDS_CSUM, csumStart: 34, csumOffset: 16 } });
    r.transmit(makeFrame(60), { header: { gsoType: NetHdrGso.TCPV4, gsoSize: 1448, hdrLen: 54 } });
    r.transmit(makeFrame(60), { header: { gsoType: NetHdrGso.ECN } });
    expect(r.backend.sent).toHaveLength(0);
    expect(r.device.stats.txMalformed).toBe(3);
    // Fields without meaning here (DATA_VALID, hdr_len, num_buffers) are ignored.
    r.transmit(makeFrame(60, 5), { header: { flags: NetHdrFlag.DATA_VALID, hdrLen: 99, numBuffers: 7 } });
    expect(sameBytes(r.backend.sent[0], makeFrame(60, 5))).toBe(true);
  });

  it('chains the queue code rejects (outside RAM, loops): length 0, counted', () => {
    const r = rig();
    r.transmitRaw([{ addr: r.drv.ram.length - 4, len: 100, writable: false }]);
    const q = r.drv.queue(NetQueue.TX);
    q.setDesc(40, { addr: r.drv.alloc(16), len: 16, flags: 1 /* NEXT */, next: 41 });
    q.setDesc(41, { addr: r.drv.alloc(16), len: 16, flags: 1 /* NEXT */, next: 40 });
    q.publish(40);
    r.drv.notify(NetQueue.TX);
    expect(q.usedIdx).toBe(2);
    expect(r.device.stats.txMalformed).toBe(2);
    r.transmit(makeFrame(60));
    expect(r.backend.sent).toHaveLength(1);
    expect(healthy(r)).toBe(true);
  });

  it('a notify of a queue that does not exist is a warning', () => {
    const r = rig();
    r.drv.setReg(MmioReg.QUEUE_NOTIFY, 7);
    expect(healthy(r)).toBe(true);
  });
});

describe('malformed receive chains: returned unused with length 0', () => {
  it('device-readable descriptors (read-only buffers) are neither read nor written', () => {
    const r = rig();
    const ro = r.drv.readable(RX_BUF, 0x11);
    r.postRxChain([ro]);
    const mixed = r.drv.readable(4, 0x22);
    const mixedW = r.drv.writable(RX_BUF, 0xee);
    r.postRxChain([mixed, mixedW]);
    const [good] = r.postRx(1);
    r.backend.emit(makeFrame(100, 1));
    r.flush();
    const used = r.drv.takeUsed(NetQueue.RX);
    expect(used.map((u) => u.len)).toEqual([0, 0, NET_HDR.SIZE + 100]);
    expect(used[2].id).toBe(good);
    expect(r.drv.bytes(ro.addr, ro.len).every((b) => b === 0x11)).toBe(true);
    expect(r.drv.bytes(mixedW.addr, mixedW.len).every((b) => b === 0xee)).toBe(true);
    expect(r.device.stats.rxBadChains).toBe(2);
    expect(r.device.stats.rxFrames).toBe(1);
    expect(healthy(r)).toBe(true);
  });

  it('with MRG_RXBUF, chains smaller than the header; without, smaller than header + Ethernet header', () => {
    const m = rig();
    m.postRx(1, 11);
    m.postRx(1, 12);
    m.postRx(1, 14);
    m.backend.emit(makeFrame(14));
    m.flush();
    expect(m.drv.takeUsed(NetQueue.RX).map((u) => u.len)).toEqual([0, 12, 14]);
    expect(m.device.stats.rxBadChains).toBe(1);

    const s = rig({ mergeable: false });
    s.postRx(1, 25);
    s.postRx(1, 26);
    s.backend.emit(makeFrame(14));
    s.flush();
    expect(s.drv.takeUsed(NetQueue.RX).map((u) => u.len)).toEqual([0, 26]);
    expect(s.device.stats.rxBadChains).toBe(1);
  });

  it('chains outside guest RAM', () => {
    const r = rig();
    r.postRxChain([{ addr: r.drv.ram.length - 10, len: RX_BUF, writable: true }]);
    r.postRx(1);
    r.backend.emit(makeFrame(60));
    r.flush();
    expect(r.drv.takeUsed(NetQueue.RX).map((u) => u.len)).toEqual([0, 72]);
    expect(healthy(r)).toBe(true);
  });

  it(`pops at most ${RX_CHAINS_PER_TURN} receive chains per turn`, () => {
    const r = rig({ queueSize: 512 }, { queueSize: 512, ramSize: 32 << 20 });
    for (let i = 0; i < 300; i++) r.postRxChain([r.drv.readable(16)], false);
    r.postRx(1, RX_BUF, false);
    r.backend.emit(makeFrame(60));
    r.time.runDeferred(1);
    expect(r.drv.queue(NetQueue.RX).pendingUsed).toBe(RX_CHAINS_PER_TURN);
    r.flush();
    const used = r.drv.takeUsed(NetQueue.RX);
    expect(used).toHaveLength(301);
    expect(used[300].len).toBe(72);
  });
});

describe('a ring that never refills while the network keeps sending', () => {
  it('holds at most 256 frames, pauses the backend once, counts every drop', () => {
    const r = rig();
    r.postRx(2);
    const n = 10_000;
    for (let i = 0; i < n; i++) {
      r.backend.emit(makeFrame(64, i)); // a backend that ignores pause()
      if (i % 500 === 0) r.flush();
      expect(r.device.rxQueuedFrames).toBeLessThanOrEqual(DEFAULT_RX_QUEUE_FRAMES);
    }
    r.flush();
    expect(r.takeRx()).toHaveLength(2);
    expect(r.device.rxQueuedFrames).toBe(DEFAULT_RX_QUEUE_FRAMES);
    expect(r.device.stats.rxDropped).toBe(n - 2 - DEFAULT_RX_QUEUE_FRAMES);
    expect(r.device.stats.rxOverflow).toBe(n - 2 - DEFAULT_RX_QUEUE_FRAMES);
    expect(r.backend.pauses).toBe(1);
    expect(r.backend.paused).toBe(true);
    expect(healthy(r)).toBe(true);
  });

  it('holds at most 1 MiB of big frames', () => {
    const r = rig({ mtu: 9000 });
    for (let i = 0; i < 1000; i++) {
      r.backend.emit(makeFrame(9018, i));
      expect(r.device.rxQueuedBytes).toBeLessThanOrEqual(DEFAULT_RX_QUEUE_BYTES);
    }
    expect(r.device.rxQueuedFrames).toBe(Math.floor(DEFAULT_RX_QUEUE_BYTES / 9018));
    expect(r.backend.pauses).toBe(1);
  });

  it('with MRG_RXBUF, a frame larger than every buffer the ring can hold is dropped, and the buffers serve the next frames', () => {
    const r = rig({ mtu: 9000 }, { queueSize: 4 });
    r.postRx(4, 1000);
    r.backend.emit(makeFrame(9018, 1)); // needs 9030 bytes; the whole ring holds 4000
    r.backend.emit(makeFrame(1500, 2));
    r.flush();
    const got = r.takeRx();
    expect(got).toHaveLength(1);
    expect(got[0].header.numBuffers).toBe(2);
    expect(sameBytes(got[0].frame, makeFrame(1500, 2))).toBe(true);
    expect(r.device.stats.rxTooBig).toBe(1);
  });

  it('the same when multi-descriptor chains take every descriptor of the ring before the frame fits', () => {
    const r = rig({ mtu: 9000 }, { queueSize: 4 });
    r.postRxChain([r.drv.writable(500, 0xee), r.drv.writable(500, 0xee)]);
    r.postRxChain([r.drv.writable(500, 0xee), r.drv.writable(500, 0xee)]);
    r.backend.emit(makeFrame(5000, 1));
    r.backend.emit(makeFrame(1500, 2));
    r.flush();
    const got = r.takeRx();
    expect(got.map((g) => g.frame.length)).toEqual([1500]);
    expect(got[0].header.numBuffers).toBe(2);
    expect(r.device.stats.rxTooBig).toBe(1);
  });

  it('a guest that posts buffers too small for any frame (without MRG_RXBUF) only loses frames', () => {
    const r = rig({ mergeable: false });
    r.postRx(1, 40);
    for (let i = 0; i < 100; i++) r.backend.emit(makeFrame(100, i));
    r.flush();
    expect(r.drv.queue(NetQueue.RX).pendingUsed).toBe(0);
    expect(r.device.stats.rxTooBig).toBe(100);
    expect(r.device.rxQueuedFrames).toBe(0);
    r.backend.emit(makeFrame(28));
    r.flush();
    expect(r.takeRx().map((g) => g.frame.length)).toEqual([28]);
  });
});
