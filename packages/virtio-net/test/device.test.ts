// The device through the real virtio-mmio transport and split queues, with a scripted guest and a
// scripted backend: features, configuration space, transmit, receive with and without MRG_RXBUF,
// backpressure both ways, per-turn bounds, reset, close, link state, and two devices on one link.
import { Feature, MmioReg, featureMask } from '@hype/virtio';
import { FakeClock, VirtioTestDriver } from '@hype/virtio/testing';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MTU,
  DEFAULT_RX_QUEUE_BYTES,
  DEFAULT_RX_QUEUE_FRAMES,
  NET_CONFIG,
  NET_HDR,
  NetFeature,
  NetQueue,
  NetStatus,
  OFFERED_FEATURES,
  PACKETS_PER_TURN,
  VirtioNetDevice,
  createBackendPair,
  createLoopbackBackend,
  formatMac,
} from '../src/index.js';
import { RX_BUF, ScriptedBackend, VERSION_1, groupReceived, healthy, makeFrame, rig, sameBytes } from './helpers.js';

describe('features and configuration space', () => {
  it('offers VERSION_1, MAC, STATUS, MRG_RXBUF and MTU, and no offloads, control queue or multiqueue', () => {
    const r = rig();
    const offered = r.drv.offeredFeatures();
    const bits = [NetFeature.MAC, NetFeature.STATUS, NetFeature.MRG_RXBUF, NetFeature.MTU];
    expect(OFFERED_FEATURES).toBe(bits.reduce((m, b) => m | featureMask(b), 0n));
    for (const b of bits) expect(offered & featureMask(b), `bit ${b}`).not.toBe(0n);
    expect(offered & VERSION_1).toBe(VERSION_1);
    // Everything below bit 24 (the device-specific range) that is offered is one of ours.
    expect(offered & ((1n << 24n) - 1n)).toBe(OFFERED_FEATURES);
    for (const b of [NetFeature.CSUM, NetFeature.GUEST_CSUM, NetFeature.GUEST_TSO4, NetFeature.HOST_TSO4, NetFeature.CTRL_VQ, NetFeature.MQ]) {
      expect(offered & featureMask(b), `bit ${b}`).toBe(0n);
    }
    expect(r.drv.negotiated & featureMask(NetFeature.MRG_RXBUF)).not.toBe(0n);
    expect(r.device.mergeableRxBuffers).toBe(true);
    expect(r.device.queueMaxSizes).toEqual([256, 256]);
    expect(r.device.deviceType).toBe(1);
  });

  it('runs without MRG_RXBUF when the driver does not accept it', () => {
    const r = rig({ mergeable: false });
    expect(r.drv.negotiated & featureMask(NetFeature.MRG_RXBUF)).toBe(0n);
    expect(r.device.mergeableRxBuffers).toBe(false);
  });

  it('reports mac, status LINK_UP, one queue pair and the MTU; writes are ignored with a warning', () => {
    const r = rig({ mtu: 9000 });
    const mac = Array.from({ length: 6 }, (_, i) => r.drv.configU8(NET_CONFIG.MAC + i));
    expect(mac).toEqual([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    expect(r.drv.configU16(NET_CONFIG.STATUS)).toBe(NetStatus.LINK_UP);
    expect(r.drv.configU16(NET_CONFIG.MAX_VIRTQUEUE_PAIRS)).toBe(1);
    expect(r.drv.configU16(NET_CONFIG.MTU)).toBe(9000);
    expect(r.drv.configU32(0)).toBe(0x12005452); // 52 54 00 12, little-endian
    r.drv.writeConfig(NET_CONFIG.MAC, 1, 0x02);
    r.drv.writeConfig(NET_CONFIG.STATUS, 2, 0);
    expect(r.drv.configU8(NET_CONFIG.MAC)).toBe(0x52);
    expect(r.drv.configU16(NET_CONFIG.STATUS)).toBe(NetStatus.LINK_UP);
    expect(r.warnings.filter((w) => w.includes('read-only config'))).toHaveLength(2);
    // Past the 12 bytes: the transport refuses.
    expect(r.drv.transport.read(MmioReg.CONFIG + NET_CONFIG.SIZE, 1)).toBe(0);
  });

  it('defaults: MTU 1500, a random 52:54:00 MAC, the bounded receive queue', () => {
    const a = new VirtioNetDevice({ backend: new ScriptedBackend() });
    const b = new VirtioNetDevice({ backend: new ScriptedBackend() });
    expect(a.mtu).toBe(DEFAULT_MTU);
    expect(a.maxFrameSize).toBe(1518);
    expect(a.mac).toMatch(/^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
    expect(a.name).toBe(`virtio-net ${a.mac}`);
    expect(a.rxQueueFrames).toBe(DEFAULT_RX_QUEUE_FRAMES);
    expect(a.rxQueueBytes).toBe(DEFAULT_RX_QUEUE_BYTES);
    expect([a.mac, b.mac].length).toBe(2);
    const mac = new VirtioNetDevice({ backend: new ScriptedBackend(), mac: Uint8Array.of(2, 0, 0, 0, 0, 9) }).mac;
    expect(mac).toBe(formatMac(Uint8Array.of(2, 0, 0, 0, 0, 9)));
  });

  it('checks its options', () => {
    const backend = new ScriptedBackend();
    expect(() => new VirtioNetDevice(undefined as never)).toThrow(TypeError);
    expect(() => new VirtioNetDevice({} as never)).toThrow(/backend has no send/);
    expect(() => new VirtioNetDevice({ backend, mtu: 67 })).toThrow(/mtu 67/);
    expect(() => new VirtioNetDevice({ backend, mtu: 65536 })).toThrow(/mtu/);
    expect(() => new VirtioNetDevice({ backend, mtu: 1500.5 })).toThrow(/mtu/);
    expect(() => new VirtioNetDevice({ backend, queueSize: 100 })).toThrow(/power of two/);
    expect(() => new VirtioNetDevice({ backend, mac: '01:00:00:00:00:01' })).toThrow(/multicast/);
    expect(() => new VirtioNetDevice({ backend, rxQueueFrames: 0 })).toThrow(/rxQueueFrames/);
    expect(() => new VirtioNetDevice({ backend, rxQueueBytes: 1000 })).toThrow(/rxQueueBytes/);
    expect(new VirtioNetDevice({ backend, mtu: 65535 }).rxQueueBytes).toBe(DEFAULT_RX_QUEUE_BYTES);
  });

  it('asks for a reset when the driver does not enable both queues', () => {
    const device = new VirtioNetDevice({ backend: new ScriptedBackend(), mac: '52:54:00:00:00:01' });
    const drv = new VirtioTestDriver(device, { queueSizes: [16] });
    drv.bringUp();
    expect(drv.needsReset).toBe(true);
    expect(drv.warnings.join('\n')).toMatch(/needs its receive and transmit queues/);
  });
});

describe('transmit', () => {
  it('hands each frame to the backend byte-exact and in order, used length 0, one interrupt per batch', () => {
    const r = rig();
    const frames = [makeFrame(60, 1), makeFrame(1514, 2), makeFrame(1518, 3), makeFrame(14, 4)];
    for (const f of frames) r.transmit(f, { notify: false });
    r.drv.notify(NetQueue.TX);
    expect(r.backend.sent.map((f) => f.length)).toEqual([60, 1514, 1518, 14]);
    r.backend.sent.forEach((f, i) => expect(sameBytes(f, frames[i])).toBe(true));
    expect(r.drv.takeUsed(NetQueue.TX).map((u) => u.len)).toEqual([0, 0, 0, 0]);
    expect(r.drv.interrupts).toBe(1);
    expect(r.device.stats).toMatchObject({ txFrames: 4, txBytes: 60 + 1514 + 1518 + 14, txDropped: 0 });
    expect(healthy(r)).toBe(true);
  });

  it('reads header and frame across any descriptor split, and through indirect tables', () => {
    const r = rig();
    const frame = makeFrame(1000, 7);
    r.transmit(frame, { split: [1, 5, 12, 13, 500] });
    r.transmit(frame, { split: [12] });
    const bytes = new Uint8Array(NET_HDR.SIZE + frame.length);
    bytes.set(frame, NET_HDR.SIZE);
    r.drv.submitIndirect([r.drv.readable(bytes.slice(0, 20)), r.drv.readable(bytes.slice(20))], { queue: NetQueue.TX });
    expect(r.backend.sent).toHaveLength(3);
    for (const f of r.backend.sent) expect(sameBytes(f, frame)).toBe(true);
  });

  it('copies the frame: guest memory changing afterwards does not change what the backend got', () => {
    const r = rig();
    const frame = makeFrame(100, 1);
    const bytes = new Uint8Array(NET_HDR.SIZE + frame.length);
    bytes.set(frame, NET_HDR.SIZE);
    const buf = r.drv.readable(bytes);
    r.transmitRaw([buf]);
    r.drv.ram.fill(0, buf.addr, buf.addr + buf.len);
    expect(sameBytes(r.backend.sent[0], frame)).toBe(true);
  });

  it('stops taking frames when the backend is full and goes on after onWritable', () => {
    const r = rig();
    r.backend.capacity = 2;
    for (let i = 0; i < 5; i++) r.transmit(makeFrame(100, i), { notify: false });
    r.drv.notify(NetQueue.TX);
    expect(r.backend.sent).toHaveLength(2);
    expect(r.device.txWaiting).toBe(true);
    expect(r.drv.takeUsed(NetQueue.TX)).toHaveLength(2); // the rest stays in the guest's ring
    r.drv.notify(NetQueue.TX); // a kick while full changes nothing
    r.flush();
    expect(r.backend.sent).toHaveLength(2);
    r.backend.writable();
    expect(r.backend.sent).toHaveLength(2); // on a later turn, not inside the callback
    r.flush();
    expect(r.backend.sent).toHaveLength(4);
    r.backend.writable();
    r.flush();
    expect(r.backend.sent.map((f) => f[20])).toEqual([0, 1, 2, 3, 4].map((i) => makeFrame(100, i)[20]));
    expect(r.drv.takeUsed(NetQueue.TX)).toHaveLength(3);
    expect(r.device.txWaiting).toBe(false);
  });

  it(`takes at most ${PACKETS_PER_TURN} frames per turn and continues on later turns`, () => {
    const r = rig({}, { queueSize: 256 });
    const n = PACKETS_PER_TURN * 2 + 10;
    for (let i = 0; i < n; i++) r.transmit(makeFrame(60, i), { notify: false });
    r.drv.notify(NetQueue.TX);
    expect(r.backend.sent).toHaveLength(PACKETS_PER_TURN);
    expect(r.time.runDeferred(1)).toBe(1);
    expect(r.backend.sent).toHaveLength(PACKETS_PER_TURN * 2);
    r.time.runDeferred(1);
    expect(r.backend.sent).toHaveLength(n);
    expect(r.time.deferred).toHaveLength(0);
  });

  it('a backend whose send throws loses that frame only (counted, warned), the device keeps running', () => {
    const r = rig();
    r.backend.throwOnSend = true;
    r.transmit(makeFrame(60));
    r.backend.throwOnSend = false;
    r.transmit(makeFrame(61));
    expect(r.backend.sent.map((f) => f.length)).toEqual([61]);
    expect(r.device.stats.txDropped).toBe(1);
    expect(r.warnings.some((w) => w.includes("send() threw"))).toBe(true);
    expect(r.drv.needsReset).toBe(false);
  });
});

describe('receive without MRG_RXBUF', () => {
  it('writes one frame per chain with num_buffers 1, in order, and interrupts', () => {
    const r = rig({ mergeable: false });
    r.postRx(3);
    const frames = [makeFrame(60, 1), makeFrame(1518, 2), makeFrame(200, 3)];
    for (const f of frames) r.backend.emit(f);
    expect(r.drv.queue(NetQueue.RX).pendingUsed).toBe(0); // delivered on a later turn, in one batch
    r.flush();
    const got = r.takeRx();
    expect(got.map((g) => g.frame.length)).toEqual([60, 1518, 200]);
    got.forEach((g, i) => {
      expect(sameBytes(g.frame, frames[i])).toBe(true);
      expect(g.header).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 1 });
      expect(g.elems[0].len).toBe(NET_HDR.SIZE + frames[i].length);
    });
    expect(r.drv.interrupts).toBe(1);
    expect(r.device.stats).toMatchObject({ rxFrames: 3, rxBytes: 60 + 1518 + 200, rxDropped: 0 });
  });

  it('fills a chain of several descriptors front to back', () => {
    const r = rig({ mergeable: false });
    r.postRxChain([r.drv.writable(5, 0xee), r.drv.writable(20, 0xee), r.drv.writable(2000, 0xee)]);
    const frame = makeFrame(1000, 9);
    r.backend.emit(frame);
    r.flush();
    const [got] = r.takeRx();
    expect(sameBytes(got.frame, frame)).toBe(true);
    expect(got.elems[0].len).toBe(1012);
  });

  it('drops a frame that does not fit the chain at the head and keeps the chain for the next one', () => {
    const r = rig({ mergeable: false });
    const [head] = r.postRx(1, NET_HDR.SIZE + 100);
    r.backend.emit(makeFrame(200, 1));
    r.backend.emit(makeFrame(100, 2));
    r.flush();
    const got = r.takeRx();
    expect(got).toHaveLength(1);
    expect(got[0].elems[0].id).toBe(head);
    expect(sameBytes(got[0].frame, makeFrame(100, 2))).toBe(true);
    expect(r.device.stats).toMatchObject({ rxDropped: 1, rxTooBig: 1, rxFrames: 1 });
  });

  it('waits for the guest to post buffers, then delivers what it holds', () => {
    const r = rig({ mergeable: false });
    for (let i = 0; i < 5; i++) r.backend.emit(makeFrame(100, i));
    r.flush();
    expect(r.device.rxQueuedFrames).toBe(5);
    expect(r.device.rxQueuedBytes).toBe(500);
    r.postRx(2);
    expect(r.takeRx().map((g) => g.frame[20])).toEqual([0, 1].map((i) => makeFrame(100, i)[20]));
    r.postRx(3);
    expect(r.takeRx()).toHaveLength(3);
    expect(r.device.rxQueuedFrames).toBe(0);
  });
});

describe('receive with MRG_RXBUF', () => {
  it('spreads a frame over as many chains as it needs, num_buffers in the first header', () => {
    const r = rig({ mtu: 9000 });
    const heads = r.postRx(4, 4096);
    const frame = makeFrame(9018, 5);
    r.backend.emit(frame);
    r.flush();
    const used = r.drv.takeUsed(NetQueue.RX);
    expect(used.map((u) => u.id)).toEqual(heads.slice(0, 3));
    expect(used.map((u) => u.len)).toEqual([4096, 4096, NET_HDR.SIZE + 9018 - 8192]);
    const [got] = groupReceived(used, (u) => r.drv.writtenBytes(u));
    expect(got.header.numBuffers).toBe(3);
    expect(sameBytes(got.frame, frame)).toBe(true);
    // The fourth chain takes the next frame, alone.
    r.backend.emit(makeFrame(60, 6));
    r.flush();
    const [next] = r.takeRx();
    expect(next.header.numBuffers).toBe(1);
    expect(next.elems[0].id).toBe(heads[3]);
  });

  it('a frame that fits one buffer takes one (num_buffers 1)', () => {
    const r = rig();
    r.postRx(2);
    r.backend.emit(makeFrame(1518, 1));
    r.backend.emit(makeFrame(64, 2));
    r.flush();
    const got = r.takeRx();
    expect(got.map((g) => g.header.numBuffers)).toEqual([1, 1]);
    expect(got.map((g) => g.frame.length)).toEqual([1518, 64]);
  });

  it('holds the chains it has until the guest posts enough for the frame, then completes them in order', () => {
    const r = rig({ mtu: 9000 });
    const first = r.postRx(2, 2000);
    r.backend.emit(makeFrame(5000, 1));
    r.flush();
    expect(r.drv.queue(NetQueue.RX).pendingUsed).toBe(0);
    expect(r.device.rxHeldChains).toBe(2);
    const more = r.postRx(2, 2000);
    const used = r.drv.takeUsed(NetQueue.RX);
    expect(used.map((u) => u.id)).toEqual([...first, more[0]]);
    const [got] = groupReceived(used, (u) => r.drv.writtenBytes(u));
    expect(got.header.numBuffers).toBe(3);
    expect(sameBytes(got.frame, makeFrame(5000, 1))).toBe(true);
    expect(r.device.rxHeldChains).toBe(0); // the fourth one stays in the ring until a frame needs it
  });

  it('many small buffers: a 1518-byte frame over 12-byte-plus buffers', () => {
    const r = rig({}, { queueSize: 256 });
    r.postRx(200, 16);
    r.backend.emit(makeFrame(1518, 3));
    r.flush();
    const [got] = r.takeRx();
    expect(got.header.numBuffers).toBe(Math.ceil((1518 + 12) / 16));
    expect(sameBytes(got.frame, makeFrame(1518, 3))).toBe(true);
  });
});

describe('receive backpressure and bounds', () => {
  it('holds at most rxQueueFrames frames, pauses the backend, counts drops, and resumes at half', () => {
    const r = rig({ rxQueueFrames: 8 });
    for (let i = 0; i < 7; i++) r.backend.emit(makeFrame(100, i));
    expect(r.backend.paused).toBe(false);
    r.backend.emit(makeFrame(100, 7));
    expect(r.backend.paused).toBe(true);
    expect(r.device.rxPaused).toBe(true);
    for (let i = 0; i < 10; i++) r.backend.emit(makeFrame(100, 100 + i)); // a backend that ignores pause
    r.flush();
    expect(r.device.rxQueuedFrames).toBe(8);
    expect(r.device.stats).toMatchObject({ rxDropped: 10, rxOverflow: 10, rxPauses: 1 });
    r.postRx(3);
    expect(r.backend.resumes).toBe(0); // 5 left: above half
    r.postRx(1);
    expect(r.backend.resumes).toBe(1);
    expect(r.backend.paused).toBe(false);
    r.postRx(10);
    expect(r.takeRx().map((g) => g.frame[20])).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => makeFrame(100, i)[20]));
  });

  it('the byte bound comes first for big frames: 1 MiB by default', () => {
    const r = rig({ mtu: 65535 });
    const size = 65553;
    let sent = 0;
    while (!r.backend.paused && sent < 100) {
      r.backend.emit(makeFrame(size, sent));
      sent++;
    }
    expect(r.device.rxQueuedBytes).toBeLessThanOrEqual(DEFAULT_RX_QUEUE_BYTES);
    expect(r.device.rxQueuedBytes + size).toBeGreaterThan(DEFAULT_RX_QUEUE_BYTES);
    expect(sent).toBe(Math.floor(DEFAULT_RX_QUEUE_BYTES / size));
    r.backend.emit(makeFrame(size));
    expect(r.device.stats.rxOverflow).toBe(1);
  });

  it('drops frames from the backend that are shorter than an Ethernet header or longer than mtu + 18', () => {
    const r = rig();
    r.postRx(4);
    r.backend.emit(new Uint8Array(13));
    r.backend.emit(makeFrame(1519));
    r.backend.emit(makeFrame(14));
    r.backend.emit('nope' as unknown as Uint8Array);
    r.flush();
    expect(r.takeRx().map((g) => g.frame.length)).toEqual([14]);
    expect(r.device.stats).toMatchObject({ rxDropped: 3, rxMalformed: 3 });
  });

  it('drops frames while the driver has not started the device', () => {
    const backend = new ScriptedBackend();
    const time = new FakeClock();
    const device = new VirtioNetDevice({ backend, defer: time.defer, mac: '52:54:00:00:00:01' });
    backend.emit(makeFrame(100));
    expect(device.stats).toMatchObject({ rxDropped: 1, rxInactive: 1 });
    expect(device.rxQueuedFrames).toBe(0);
  });

  it(`writes at most ${PACKETS_PER_TURN} frames per turn`, () => {
    const r = rig({}, { queueSize: 256 });
    r.postRx(200, RX_BUF, false);
    for (let i = 0; i < 150; i++) r.backend.emit(makeFrame(60, i));
    r.time.runDeferred(1);
    expect(r.drv.queue(NetQueue.RX).pendingUsed).toBe(PACKETS_PER_TURN);
    r.time.runDeferred(1);
    expect(r.drv.queue(NetQueue.RX).pendingUsed).toBe(PACKETS_PER_TURN * 2);
    r.flush();
    expect(r.takeRx()).toHaveLength(150);
  });
});

describe('reset, close and link state', () => {
  it('reset mid-flight drops held frames and chains, resumes the backend, and a new activation works', () => {
    const r = rig({ rxQueueFrames: 4, mtu: 9000 });
    r.postRx(1, 2000);
    for (let i = 0; i < 6; i++) r.backend.emit(makeFrame(5000, i));
    r.flush();
    expect(r.device.rxHeldChains).toBe(1);
    expect(r.backend.paused).toBe(true);
    r.transmit(makeFrame(60), { notify: false });
    r.time.defer(() => {}); // something pending on the clock
    r.drv.reset();
    expect(r.device.isActive).toBe(false);
    expect(r.device.rxQueuedFrames).toBe(0);
    expect(r.device.rxHeldChains).toBe(0);
    expect(r.backend.paused).toBe(false);
    expect(r.device.stats.rxDropped).toBe(6); // 2 overflowed + 4 dropped by the reset
    r.flush(); // deferred turns of the old activation do nothing
    r.backend.emit(makeFrame(100));
    expect(r.device.stats.rxInactive).toBe(1);
    r.drv.init();
    r.postRx(1);
    r.backend.emit(makeFrame(100, 42));
    r.flush();
    const [got] = r.takeRx();
    expect(sameBytes(got.frame, makeFrame(100, 42))).toBe(true);
    r.transmit(makeFrame(61, 1));
    expect(r.backend.sent.map((f) => f.length)).toEqual([61]);
    expect(healthy(r)).toBe(true);
  });

  it('a reset while the backend is full keeps waiting for onWritable (backend state survives)', () => {
    const r = rig();
    r.backend.capacity = 1;
    r.transmit(makeFrame(60, 1));
    expect(r.device.txWaiting).toBe(true);
    r.drv.reset();
    r.drv.init();
    r.transmit(makeFrame(60, 2));
    expect(r.backend.sent).toHaveLength(1);
    r.backend.writable();
    r.flush();
    expect(r.backend.sent).toHaveLength(2);
  });

  it('close() closes the backend once, unsubscribes, and the device goes quiet', async () => {
    const r = rig();
    r.postRx(2);
    expect(r.backend.listenerCount).toBe(3);
    const closing = r.device.close();
    expect(r.device.close()).toBe(closing);
    await closing;
    expect(r.backend.closes).toBe(1);
    expect(r.backend.listenerCount).toBe(0);
    expect(r.device.linkUp).toBe(false);
    r.transmit(makeFrame(60));
    expect(r.backend.sent).toHaveLength(0);
  });

  it('a backend that closes takes the link down (config interrupt), and the guest frames are dropped', () => {
    const r = rig();
    r.drv.ackInterrupt();
    const before = r.drv.interrupts;
    r.backend.fail(new Error('peer went away'));
    expect(r.drv.configU16(NET_CONFIG.STATUS)).toBe(0);
    expect(r.drv.interrupts).toBe(before + 1);
    expect(r.drv.ackInterrupt() & 2).toBe(2); // configuration change
    expect(r.warnings.some((w) => w.includes('peer went away'))).toBe(true);
    r.transmit(makeFrame(60));
    expect(r.backend.sent).toHaveLength(0);
    expect(r.device.stats.txDropped).toBe(1);
    expect(r.drv.takeUsed(NetQueue.TX)).toHaveLength(1);
  });

  it('setLinkUp toggles status with a configuration change', () => {
    const r = rig();
    const gen = r.drv.reg(MmioReg.CONFIG_GENERATION);
    r.device.setLinkUp(false);
    expect(r.drv.configU16(NET_CONFIG.STATUS)).toBe(0);
    r.device.setLinkUp(false); // no change, no interrupt
    r.device.setLinkUp(true);
    expect(r.drv.configU16(NET_CONFIG.STATUS)).toBe(NetStatus.LINK_UP);
    expect(r.drv.reg(MmioReg.CONFIG_GENERATION)).toBe(gen + 2);
  });
});

describe('two devices on an in-memory link', () => {
  it('frames one guest sends arrive in the other, byte-exact, with backpressure in between', async () => {
    const [a, b] = createBackendPair({ capacity: 4 });
    const devA = new VirtioNetDevice({ backend: a, mac: '52:54:00:00:00:0a' });
    const devB = new VirtioNetDevice({ backend: b, mac: '52:54:00:00:00:0b' });
    const drvA = new VirtioTestDriver(devA, { queueSize: 64, ramSize: 8 << 20 });
    const drvB = new VirtioTestDriver(devB, { queueSize: 64, ramSize: 8 << 20 });
    drvA.init();
    drvB.init();
    const frames = Array.from({ length: 40 }, (_, i) => makeFrame(60 + i * 30, i));
    for (const f of frames) {
      const bytes = new Uint8Array(NET_HDR.SIZE + f.length);
      bytes.set(f, NET_HDR.SIZE);
      drvA.queue(NetQueue.TX).addChain([drvA.readable(bytes)]);
    }
    drvA.notify(NetQueue.TX);
    // B posts buffers a few at a time, as a guest refilling after each interrupt.
    const received: Uint8Array[] = [];
    for (let round = 0; round < 100 && received.length < frames.length; round++) {
      for (let i = 0; i < 3; i++) drvB.queue(NetQueue.RX).addChain([drvB.writable(RX_BUF)]);
      drvB.notify(NetQueue.RX);
      await new Promise((resolve) => setImmediate(resolve));
      for (const g of groupReceived(drvB.takeUsed(NetQueue.RX), (u) => drvB.writtenBytes(u))) received.push(g.frame);
    }
    expect(received).toHaveLength(frames.length);
    received.forEach((f, i) => expect(sameBytes(f, frames[i])).toBe(true));
    expect(devB.stats.rxDropped).toBe(0);
    expect(a.dropped).toBe(0);
    await devA.close();
    expect(a.isClosed && b.isClosed).toBe(true);
  });

  it('a loopback backend sends a guest its own frames back', async () => {
    const loop = createLoopbackBackend();
    const dev = new VirtioNetDevice({ backend: loop, mac: '52:54:00:00:00:0c' });
    const drv = new VirtioTestDriver(dev, { queueSize: 16 });
    drv.init();
    drv.queue(NetQueue.RX).addChain([drv.writable(RX_BUF)]);
    drv.notify(NetQueue.RX);
    const f = makeFrame(99, 3);
    const bytes = new Uint8Array(NET_HDR.SIZE + f.length);
    bytes.set(f, NET_HDR.SIZE);
    drv.submit([drv.readable(bytes)], { queue: NetQueue.TX });
    const used = await drv.waitUsed(1, { queue: NetQueue.RX });
    const [got] = groupReceived(used, (u) => drv.writtenBytes(u));
    expect(sameBytes(got.frame, f)).toBe(true);
    expect(drv.negotiated & featureMask(Feature.VERSION_1)).not.toBe(0n);
  });
});
