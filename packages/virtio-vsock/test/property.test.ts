// Properties (fast-check):
// 1. Whatever a hostile guest sends (any header field, any length, wrong CIDs, garbage chains, odd rx and
//    event buffers), mixed with host actions, timers, transport and device resets, the device never throws
//    or asks for a reset, writes guest RAM only in the written prefix of rx/event buffers (never in tx
//    buffers), writes well-formed packets, and its host-side buffering stays inside the fixed bounds.
// 2. Credit both ways with a well-behaved guest whose credit and buffers change at random: the host never
//    sends beyond the guest's credit, the guest is never reset, and every byte arrives in order.
// HYPE_FUZZ_RUNS=<n> for a longer run, HYPE_FUZZ_SEED=<n> to replay.
import type { BufSpec, UsedElem } from '@hype/virtio/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HOST_PORT_FIRST,
  MAX_PACKET_PAYLOAD,
  VSOCK_HDR,
  type VsockConnection,
  VsockOp,
  VsockQueue,
  VsockShutdown,
} from '../src/index.js';
import { type Packet, type Rig, buffersOf, concat, parsePacket, pattern, rig, sameBytes } from './helpers.js';

const RUNS = Number(process.env.HYPE_FUZZ_RUNS ?? 100);
const SEED = process.env.HYPE_FUZZ_SEED === undefined ? undefined : Number(process.env.HYPE_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
/** Per-test timeout that grows with HYPE_FUZZ_RUNS (a run takes tens of milliseconds here). */
const TIMEOUT = Math.max(30_000, RUNS * 150);

const LIMITS = { bufAlloc: 8192, maxConnections: 4, maxPendingRst: 3, sendHighWaterMark: 4096, sendQueueLimit: 50_000 };
const FILL = 0xee;

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Any header at all (mostly plausible values, sometimes garbage in each field). */
const anyPacketArb = fc.record({
  kind: fc.constant('packet' as const),
  op: fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 1, max: 7 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 8, 0xffff) }),
  type: fc.oneof({ weight: 10, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(0, 2, 9) }),
  srcCid: fc.oneof({ weight: 12, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.constantFrom(2, 4) }),
  srcCidHigh: fc.oneof({ weight: 20, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }),
  dstCid: fc.oneof({ weight: 12, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.constantFrom(1, 3) }),
  srcPort: fc.constantFrom(1, 2, 3),
  dstPort: fc.constantFrom(10, 11, 12, HOST_PORT_FIRST, HOST_PORT_FIRST + 1),
  payloadLen: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 64 }) }, { weight: 1, arbitrary: fc.constantFrom(4096, 8192, 9000) }),
  lenMode: fc.oneof(
    { weight: 8, arbitrary: fc.constant('exact' as const) },
    { weight: 1, arbitrary: fc.constantFrom('short' as const, 'long' as const, 'huge' as const) },
  ),
  flags: fc.oneof(fc.constantFrom(0, 1, 2, 3), u32),
  bufAlloc: fc.oneof(fc.constantFrom(0, 100, 65536, 0xffffffff), u32),
  fwdCnt: fc.oneof(fc.constant(0), u32),
  split: fc.boolean(),
});
/** A well-formed header on the listening port or a host-initiated one: drives connections far. */
const plausiblePacketArb = fc.record({
  kind: fc.constant('packet' as const),
  op: fc.constantFrom(VsockOp.REQUEST, VsockOp.REQUEST, VsockOp.RESPONSE, VsockOp.RST, VsockOp.SHUTDOWN, VsockOp.RW, VsockOp.RW, VsockOp.RW, VsockOp.CREDIT_UPDATE, VsockOp.CREDIT_REQUEST),
  type: fc.constant(1),
  srcCid: fc.constant(-1),
  srcCidHigh: fc.constant(0),
  dstCid: fc.constant(2),
  srcPort: fc.constantFrom(1, 2, 3, 4, 5),
  dstPort: fc.constantFrom(10, 10, 10, 11, HOST_PORT_FIRST, HOST_PORT_FIRST + 1),
  payloadLen: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 3000 }) }, { weight: 1, arbitrary: fc.constantFrom(4096, 8192, 8193) }),
  lenMode: fc.constant('exact' as const),
  flags: fc.constantFrom(0, 1, 2, 3),
  bufAlloc: fc.constantFrom(0, 1000, 65536),
  fwdCnt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100_000 })),
  split: fc.boolean(),
});
const packetArb = fc.oneof({ weight: 1, arbitrary: anyPacketArb }, { weight: 2, arbitrary: plausiblePacketArb });
const actionArb = fc.oneof(
  { weight: 8, arbitrary: packetArb },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('rx' as const),
      count: fc.integer({ min: 1, max: 3 }),
      size: fc.constantFrom(0, 10, 44, 45, 100, 4140),
      readable: fc.oneof({ weight: 10, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('event' as const), size: fc.constantFrom(0, 2, 4, 8) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw' as const), bytes: fc.uint8Array({ maxLength: 100 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('host' as const),
      which: fc.nat(),
      what: fc.constantFrom('write', 'bigwrite', 'end', 'close', 'destroy', 'pause', 'resume'),
      size: fc.integer({ min: 0, max: 6000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('connect' as const), port: fc.constantFrom(1, 2, 3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('time' as const), ms: fc.constantFrom(10, 1000, 2500, 6000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('defer' as const), all: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), transport: fc.boolean() }) },
);

interface Posted {
  buffers: readonly BufSpec[];
  /** Contents of readable buffers when posted (they must never change). */
  readable: Uint8Array[];
}

describe('property: a hostile guest against the vsock device', () => {
  it('never throws, writes only where it may, keeps its buffers bounded', () => {
    fc.assert(
      fc.property(fc.array(actionArb, { minLength: 1, maxLength: 50 }), (actions) => {
        const r = rig(LIMITS, { ramSize: 8 << 20, queueSize: 32 });
        const conns: VsockConnection[] = [];
        r.device.listen(10, (c) => {
          conns.push(c);
          c.onData(() => {});
          if (conns.length % 2 === 0) c.pause(); // every other one lets guest data pile up
        });
        r.device.listen(11, () => false);
        const posted = new Map<string, Posted>();
        const post = (queue: number, buffers: BufSpec[]): boolean => {
          if (r.drv.queue(queue).freeDescriptors < buffers.length) return false;
          const readable = buffers.filter((b) => !b.writable).map((b) => r.drv.bytes(b.addr, b.len));
          const head = r.drv.queue(queue).addChain(buffers);
          posted.set(`${queue}:${head}`, { buffers, readable });
          return true;
        };
        const collect = (queue: number) => {
          for (const u of r.drv.takeUsed(queue)) check(queue, u);
        };
        const check = (queue: number, u: UsedElem) => {
          const key = `${queue}:${u.id}`;
          const p = posted.get(key);
          expect(p, `used element ${key} was posted`).toBeDefined();
          posted.delete(key);
          // Readable buffers untouched.
          p!.buffers.filter((b) => !b.writable).forEach((b, i) => expect(sameBytes(r.drv.bytes(b.addr, b.len), p!.readable[i])).toBe(true));
          const written = r.drv.writtenBytes(u); // throws if len > writable capacity
          // Writable bytes past the used length untouched.
          let skip = u.len;
          for (const b of buffersOf(u).filter((x) => x.writable)) {
            if (b.len > skip) expect(r.drv.bytes(b.addr + skip, b.len - skip).every((x) => x === FILL)).toBe(true);
            skip = Math.max(0, skip - b.len);
          }
          if (queue === VsockQueue.RX && u.len > 0) {
            const pkt: Packet = parsePacket(written);
            expect(pkt.srcCid).toBe(2);
            expect(pkt.srcCidHigh).toBe(0);
            expect(pkt.type).toBe(1);
            expect(pkt.op).toBeGreaterThanOrEqual(VsockOp.REQUEST);
            expect(pkt.op).toBeLessThanOrEqual(VsockOp.CREDIT_REQUEST);
            expect(pkt.len).toBeLessThanOrEqual(MAX_PACKET_PAYLOAD);
            if (pkt.op !== VsockOp.RW) expect(pkt.len).toBe(0);
            if (pkt.op !== VsockOp.SHUTDOWN) expect(pkt.flags).toBe(0);
            else expect(pkt.flags & ~VsockShutdown.BOTH).toBe(0);
          }
          if (queue === VsockQueue.TX) expect(u.len).toBe(0);
          if (queue === VsockQueue.EVENT && u.len > 0) expect(written).toEqual(new Uint8Array(4));
        };

        // Start with two open connections (guest ports 1 and 2; the second one paused) so the random
        // actions reach deep states.
        for (const port of [1, 2]) {
          post(VsockQueue.RX, [r.drv.writable(4140, FILL)]);
          post(VsockQueue.TX, [r.drv.readable(r.guest.header({ op: VsockOp.REQUEST, srcPort: port, dstPort: 10 }))]);
          r.drv.notify(VsockQueue.TX);
          collect(VsockQueue.RX);
          collect(VsockQueue.TX);
        }
        expect(r.device.connections().map((c) => c.state)).toEqual(['open', 'open']);
        for (const a of actions) {
          switch (a.kind) {
            case 'packet': {
              const payload = pattern(a.payloadLen);
              const len = a.lenMode === 'exact' ? a.payloadLen : a.lenMode === 'short' ? Math.max(0, a.payloadLen - 1) : a.lenMode === 'long' ? a.payloadLen + 1 : 0x10000 + a.payloadLen;
              const hdr = r.guest.header({
                op: a.op,
                type: a.type,
                srcCid: a.srcCid === -1 ? r.device.guestCid : a.srcCid,
                srcCidHigh: a.srcCidHigh,
                dstCid: a.dstCid,
                srcPort: a.srcPort,
                dstPort: a.dstPort,
                len,
                flags: a.flags,
                bufAlloc: a.bufAlloc,
                fwdCnt: a.fwdCnt,
              });
              const buffers =
                a.split || payload.length === 0
                  ? [r.drv.readable(hdr), ...(payload.length > 0 ? [r.drv.readable(payload)] : [])]
                  : [r.drv.readable(concat([hdr, payload]))];
              if (post(VsockQueue.TX, buffers)) r.drv.notify(VsockQueue.TX);
              break;
            }
            case 'raw':
              if (post(VsockQueue.TX, [r.drv.readable(a.bytes.length === 0 ? new Uint8Array(1) : a.bytes)])) r.drv.notify(VsockQueue.TX);
              break;
            case 'rx':
              for (let i = 0; i < a.count; i++) {
                const bufs = a.readable ? [r.drv.readable(4), r.drv.writable(a.size, FILL)] : [r.drv.writable(a.size, FILL)];
                post(VsockQueue.RX, bufs);
              }
              r.drv.notify(VsockQueue.RX);
              break;
            case 'event':
              post(VsockQueue.EVENT, [r.drv.writable(a.size, FILL)]);
              r.drv.notify(VsockQueue.EVENT);
              break;
            case 'host': {
              const all = r.device.connections().concat(conns);
              if (all.length === 0) break;
              const c = all[a.which % all.length];
              if (a.what === 'write') c.write(pattern(a.size));
              else if (a.what === 'bigwrite') c.write(pattern(LIMITS.sendQueueLimit - a.size));
              else if (a.what === 'end') c.end();
              else if (a.what === 'close') c.close();
              else if (a.what === 'destroy') c.destroy();
              else if (a.what === 'pause') c.pause();
              else c.resume();
              break;
            }
            case 'connect':
              r.device.connect(a.port).then(
                (c) => conns.push(c),
                () => {},
              );
              break;
            case 'time':
              r.time.advance(a.ms);
              break;
            case 'defer':
              r.time.runDeferred(a.all ? 50 : 1);
              break;
            case 'reset':
              if (a.transport) r.device.transportReset();
              else {
                for (const q of [VsockQueue.RX, VsockQueue.TX, VsockQueue.EVENT]) collect(q);
                r.drv.reset();
                r.drv.init();
                posted.clear();
              }
              break;
          }
          for (const q of [VsockQueue.RX, VsockQueue.TX, VsockQueue.EVENT]) collect(q);
          expect(r.drv.needsReset).toBe(false);
          expect(r.drv.warnings.filter((w) => w.includes('threw') || w.includes('failed'))).toEqual([]);
          expect(r.device.connectionCount).toBeLessThanOrEqual(LIMITS.maxConnections);
          expect(r.device.pendingRstCount).toBeLessThanOrEqual(LIMITS.maxPendingRst);
          for (const c of r.device.connections()) {
            expect(c.readableLength).toBeLessThanOrEqual(LIMITS.bufAlloc);
            expect(c.writableLength).toBeLessThanOrEqual(LIMITS.sendQueueLimit);
          }
        }
      }),
      params,
    );
  }, TIMEOUT);
});

const creditActionArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('hostWrite' as const), size: fc.integer({ min: 1, max: 20_000 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('guestWrite' as const), size: fc.integer({ min: 1, max: 6000 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rx' as const), size: fc.integer({ min: VSOCK_HDR.SIZE, max: 5000 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('consume' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }), bufAlloc: fc.integer({ min: 0, max: 30_000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pause' as const), paused: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('creditRequest' as const) }) },
);

/** A well-behaved guest on one connection: it tracks both credits and never exceeds the host's. */
class GuestModel {
  // host → guest
  received: Uint8Array[] = [];
  receivedBytes = 0;
  consumed = 0;
  bufAlloc = 1000;
  // guest → host
  sent = 0;
  hostBufAlloc = 0;
  hostFwdCnt = 0;
  constructor(
    readonly r: Rig,
    readonly hostPort: number,
    readonly guestPort: number,
  ) {}
  send(op: number, payload?: Uint8Array, flags = 0): void {
    this.r.guest.send({ op, srcPort: this.guestPort, dstPort: this.hostPort, bufAlloc: this.bufAlloc, fwdCnt: this.consumed, flags }, payload);
    this.r.guest.takeTxUsed();
  }
  get hostCredit(): number {
    return this.hostBufAlloc - (this.sent - this.hostFwdCnt);
  }
  /** Take rx packets, checking each RW against the credit this guest gave. */
  take(): Packet[] {
    const packets = this.r.guest.takeRx();
    for (const p of packets) {
      expect(p.op).not.toBe(VsockOp.RST);
      this.hostBufAlloc = p.bufAlloc;
      this.hostFwdCnt = p.fwdCnt;
      if (p.op === VsockOp.RW) {
        this.received.push(p.payload);
        this.receivedBytes += p.len;
        // The host never has more bytes in flight than this guest's buffer.
        expect(this.receivedBytes - this.consumed).toBeLessThanOrEqual(this.bufAlloc);
      }
      if (p.op === VsockOp.CREDIT_REQUEST) this.send(VsockOp.CREDIT_UPDATE);
    }
    return packets;
  }
}

describe('property: credit both ways', () => {
  it('the host never exceeds the guest credit, a respectful guest is never reset, bytes arrive in order', () => {
    fc.assert(
      fc.property(fc.array(creditActionArb, { minLength: 1, maxLength: 60 }), (actions) => {
        const r = rig({ bufAlloc: 16_384 }, { ramSize: 16 << 20, queueSize: 64 });
        let conn!: VsockConnection;
        const hostGot: Uint8Array[] = [];
        r.device.listen(10, (c) => {
          conn = c;
          c.onData((b) => hostGot.push(b.slice()));
        });
        const g = new GuestModel(r, 10, 1);
        r.guest.postRx(1);
        g.send(VsockOp.REQUEST);
        expect(g.take().map((p) => p.op)).toEqual([VsockOp.RESPONSE]);
        let hostWritten = 0;
        let guestWritten = 0;
        for (const a of actions) {
          switch (a.kind) {
            case 'hostWrite':
              conn.write(pattern(a.size, hostWritten));
              hostWritten += a.size;
              break;
            case 'guestWrite': {
              const n = Math.min(a.size, g.hostCredit, MAX_PACKET_PAYLOAD);
              if (n > 0) {
                g.send(VsockOp.RW, pattern(n, guestWritten));
                g.sent += n;
                guestWritten += n;
              }
              break;
            }
            case 'rx':
              if (r.drv.queue(VsockQueue.RX).freeDescriptors > 0) r.guest.postRx(1, a.size);
              break;
            case 'consume':
              g.consumed += Math.floor((g.receivedBytes - g.consumed) * a.fraction);
              // A guest may shrink its buffer, but not below what it holds.
              g.bufAlloc = Math.max(a.bufAlloc, g.receivedBytes - g.consumed);
              g.send(VsockOp.CREDIT_UPDATE);
              break;
            case 'pause':
              if (a.paused) conn.pause();
              else conn.resume();
              break;
            case 'creditRequest':
              g.send(VsockOp.CREDIT_REQUEST);
              break;
          }
          r.flush();
          g.take();
          expect(conn.readableLength).toBeLessThanOrEqual(16_384);
          expect(conn.state).toBe('open');
        }
        // Drain: everything arrives once the guest keeps consuming and the host reads.
        conn.resume();
        for (let i = 0; i < 500 && (g.receivedBytes < hostWritten || concat(hostGot).length < guestWritten); i++) {
          g.consumed = g.receivedBytes;
          g.bufAlloc = Math.max(g.bufAlloc, 8192);
          g.send(VsockOp.CREDIT_UPDATE);
          const need = Math.min(4, r.drv.queue(VsockQueue.RX).freeDescriptors);
          if (need > 0) r.guest.postRx(need);
          r.flush();
          g.take();
        }
        expect(g.receivedBytes).toBe(hostWritten);
        expect(sameBytes(concat(g.received), pattern(hostWritten))).toBe(true);
        expect(sameBytes(concat(hostGot), pattern(guestWritten))).toBe(true);
        expect(r.drv.warnings).toEqual([]);
      }),
      params,
    );
  }, TIMEOUT);
});
