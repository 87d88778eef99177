// Properties (fast-check), over random frames both ways and random ring states: receive chains of any
// size and shape (split, read-only, too small), transmit chains with valid and malformed frames, a
// backend that fills up, becomes writable, and keeps sending while the guest posts nothing, deferred
// turns, device resets, with and without MRG_RXBUF:
// - nothing throws out of the device and it never asks for a reset;
// - every frame the guest receives is byte-exact, in order (a subsequence of what the backend sent: the
//   device may drop, never reorder or alter), with a zero header and num_buffers right;
// - every frame the backend gets is byte-exact, in order (a subsequence of the guest's valid frames);
// - guest RAM changes only in the written prefix of receive buffers (never in transmit buffers or
//   device-readable ones);
// - what the host holds stays inside the bounds (queued frames and bytes, held chains), and every frame
//   from the backend is accounted for (delivered, dropped or still queued).
// HYPE_FUZZ_RUNS=<n> for a longer run, HYPE_FUZZ_SEED=<n> to replay.
import type { BufSpec, UsedElem } from '@hype/virtio/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NetHdrFlag, NetQueue, encodeNetHeader } from '../src/index.js';
import { type Rig, concat, groupReceived, healthy, makeFrame, rig, sameBytes } from './helpers.js';

const RUNS = Number(process.env.HYPE_FUZZ_RUNS ?? 100);
const SEED = process.env.HYPE_FUZZ_SEED === undefined ? undefined : Number(process.env.HYPE_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };
/** Per-test timeout that grows with HYPE_FUZZ_RUNS. */
const TIMEOUT = Math.max(30_000, RUNS * 200);

const LIMITS = { rxQueueFrames: 8, rxQueueBytes: 8192 };
const QUEUE_SIZE = 16;
const FILL = 0xee;

const frameLength = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 14, max: 1518 }) },
  { weight: 2, arbitrary: fc.constantFrom(14, 60, 1514, 1518) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 13, 1519, 4000) },
);

const actionArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('tx' as const),
      length: frameLength,
      /** Cut points as fractions of the chain's bytes. */
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }),
      bad: fc.oneof(
        { weight: 12, arbitrary: fc.constant('none' as const) },
        { weight: 1, arbitrary: fc.constantFrom('csum' as const, 'gso' as const, 'writable' as const, 'short' as const) },
      ),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('rx' as const),
      count: fc.integer({ min: 1, max: 3 }),
      size: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(1530, 2048) },
        { weight: 4, arbitrary: fc.integer({ min: 12, max: 1600 }) },
        { weight: 1, arbitrary: fc.constantFrom(0, 5, 11, 25, 26) },
      ),
      pieces: fc.integer({ min: 1, max: 3 }),
      readable: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('emit' as const), count: fc.integer({ min: 1, max: 12 }), length: frameLength }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('capacity' as const), capacity: fc.constantFrom(1, 2, 5, Infinity) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('writable' as const) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('turn' as const), all: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('kick' as const), queue: fc.constantFrom(NetQueue.RX, NetQueue.TX) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const) }) },
);

interface Posted {
  buffers: readonly BufSpec[];
  /** Contents of readable buffers when posted (they must never change). */
  readable: Uint8Array[];
}

/** Greedy subsequence matcher: each `got` must equal a later `candidates` entry than the previous one. */
class Subsequence {
  private next = 0;
  readonly candidates: Uint8Array[] = [];
  match(frame: Uint8Array): boolean {
    while (this.next < this.candidates.length) {
      if (sameBytes(this.candidates[this.next++], frame)) return true;
    }
    return false;
  }
}

type Action = typeof actionArb extends fc.Arbitrary<infer A> ? A : never;

function run(r: Rig, actions: Action[]): void {
  const posted = new Map<string, Posted>();
  const toGuest = new Subsequence();
  const toBackend = new Subsequence();
  let emitted = 0;
  let serial = 0;
  let backendChecked = 0;

  const post = (queue: number, buffers: BufSpec[]): boolean => {
    if (r.drv.queue(queue).freeDescriptors < buffers.length) return false;
    const readable = buffers.filter((b) => !b.writable).map((b) => r.drv.bytes(b.addr, b.len));
    const head = r.drv.queue(queue).addChain(buffers);
    posted.set(`${queue}:${head}`, { buffers, readable });
    return true;
  };

  const checkUsed = (queue: number, u: UsedElem): Posted => {
    const key = `${queue}:${u.id}`;
    const p = posted.get(key);
    expect(p, `used element ${key} was posted`).toBeDefined();
    posted.delete(key);
    p!.buffers.filter((b) => !b.writable).forEach((b, i) => expect(sameBytes(r.drv.bytes(b.addr, b.len), p!.readable[i])).toBe(true));
    let skip = u.len;
    for (const b of p!.buffers.filter((x) => x.writable)) {
      if (b.len > skip) expect(r.drv.bytes(b.addr + skip, b.len - skip).every((x) => x === FILL)).toBe(true);
      skip = Math.max(0, skip - b.len);
    }
    if (queue === NetQueue.TX) expect(u.len).toBe(0);
    return p!;
  };

  const collect = () => {
    const txUsed = r.drv.takeUsed(NetQueue.TX);
    for (const u of txUsed) checkUsed(NetQueue.TX, u);
    const rxUsed = r.drv.takeUsed(NetQueue.RX);
    for (const u of rxUsed) checkUsed(NetQueue.RX, u);
    for (const g of groupReceived(rxUsed, (u) => r.drv.writtenBytes(u))) {
      expect({ ...g.header, numBuffers: 0 }).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 0 });
      expect(g.header.numBuffers).toBe(g.elems.length);
      if (!r.device.mergeableRxBuffers) expect(g.header.numBuffers).toBe(1);
      expect(toGuest.match(g.frame), `received ${g.frame.length}-byte frame was sent by the backend, in order`).toBe(true);
    }
    for (; backendChecked < r.backend.sent.length; backendChecked++) {
      expect(toBackend.match(r.backend.sent[backendChecked]), 'backend frame was sent by the guest, in order').toBe(true);
    }
  };

  const bounded = () => {
    expect(r.device.rxQueuedFrames).toBeLessThanOrEqual(LIMITS.rxQueueFrames);
    expect(r.device.rxQueuedBytes).toBeLessThanOrEqual(LIMITS.rxQueueBytes);
    expect(r.device.rxHeldChains).toBeLessThanOrEqual(QUEUE_SIZE);
    expect(r.device.stats.rxFrames + r.device.stats.rxDropped + r.device.rxQueuedFrames).toBe(emitted);
    expect(healthy(r)).toBe(true);
  };

  for (const a of actions) {
    switch (a.kind) {
      case 'tx': {
        const frame = makeFrame(a.length, serial++);
        const header = encodeNetHeader(a.bad === 'csum' ? { flags: NetHdrFlag.NEEDS_CSUM } : a.bad === 'gso' ? { gsoType: 1 } : {});
        const bytes = a.bad === 'short' ? header.subarray(0, 7) : concat([header, frame]);
        const cuts = [...new Set([0, ...a.cuts.map((c) => Math.floor(c * bytes.length)), bytes.length])].sort((x, y) => x - y);
        const buffers: BufSpec[] = [];
        for (let i = 0; i + 1 < cuts.length; i++) if (cuts[i + 1] > cuts[i]) buffers.push(r.drv.readable(bytes.slice(cuts[i], cuts[i + 1])));
        if (a.bad === 'writable') buffers.push(r.drv.writable(8, FILL));
        if (buffers.length === 0) break;
        if (post(NetQueue.TX, buffers)) {
          const valid = a.bad === 'none' && a.length >= 14 && a.length <= r.device.maxFrameSize;
          if (valid) toBackend.candidates.push(frame);
          r.drv.notify(NetQueue.TX);
        }
        break;
      }
      case 'rx': {
        for (let i = 0; i < a.count; i++) {
          const sizes = Array.from({ length: a.pieces }, (_, k) => Math.floor(a.size / a.pieces) + (k === 0 ? a.size % a.pieces : 0));
          const buffers: BufSpec[] = sizes.map((s) => r.drv.writable(s, FILL));
          if (a.readable) buffers.unshift(r.drv.readable(4, 0x33));
          post(NetQueue.RX, buffers);
        }
        r.drv.notify(NetQueue.RX);
        break;
      }
      case 'emit':
        for (let i = 0; i < a.count; i++) {
          const frame = makeFrame(a.length, serial++);
          if (a.length >= 14 && a.length <= r.device.maxFrameSize) toGuest.candidates.push(frame);
          emitted++;
          r.backend.emit(frame);
        }
        break;
      case 'capacity':
        r.backend.capacity = a.capacity;
        break;
      case 'writable':
        r.backend.writable();
        break;
      case 'turn':
        r.time.runDeferred(a.all ? Infinity : 1);
        break;
      case 'kick':
        r.drv.notify(a.queue);
        break;
      case 'reset':
        collect();
        r.drv.reset();
        posted.clear();
        r.drv.init();
        break;
    }
    collect();
    bounded();
  }
  // Drain: the backend takes everything, the guest posts plenty of buffers.
  r.backend.capacity = Infinity;
  r.backend.writable();
  for (let round = 0; round < 20; round++) {
    while (r.drv.queue(NetQueue.RX).freeDescriptors > 0) post(NetQueue.RX, [r.drv.writable(2048, FILL)]);
    r.drv.notify(NetQueue.RX);
    r.drv.notify(NetQueue.TX);
    r.time.runDeferred();
    collect();
    bounded();
  }
  expect(r.device.rxQueuedFrames).toBe(0);
  expect(r.drv.queue(NetQueue.TX).outstanding).toBe(0);
}

describe('property: random frames and ring states against the virtio-net device', () => {
  it(
    'never throws, delivers byte-exact frames in order both ways, writes only where it may, stays bounded',
    () => {
      fc.assert(
        fc.property(fc.boolean(), fc.array(actionArb, { minLength: 1, maxLength: 60 }), (mergeable, actions) => {
          const r = rig({ ...LIMITS, mergeable }, { queueSize: QUEUE_SIZE, ramSize: 8 << 20 });
          run(r, actions);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'a well-behaved guest and backend lose nothing: every frame arrives, byte-exact, in order',
    () => {
      fc.assert(
        fc.property(
          fc.boolean(),
          fc.array(fc.integer({ min: 14, max: 1518 }), { minLength: 1, maxLength: 80 }),
          fc.array(fc.integer({ min: 14, max: 1518 }), { maxLength: 80 }),
          fc.constantFrom(1, 3, Infinity),
          (mergeable, rxLengths, txLengths, capacity) => {
            const r = rig({ mergeable }, { queueSize: 32, ramSize: 16 << 20 });
            r.backend.capacity = capacity;
            const rxFrames = rxLengths.map((n, i) => makeFrame(n, i));
            const txFrames = txLengths.map((n, i) => makeFrame(n, 1000 + i));
            const got: Uint8Array[] = [];
            let rxNext = 0;
            let txNext = 0;
            for (let round = 0; round < 200 && (got.length < rxFrames.length || r.backend.sent.length < txFrames.length); round++) {
              // The guest refills its ring and queues a few frames; the network sends up to 5 frames (below the device's bound).
              while (r.drv.queue(NetQueue.RX).freeDescriptors > 0) r.postRx(1, 1530, false);
              r.drv.notify(NetQueue.RX);
              for (let i = 0; i < 5 && rxNext < rxFrames.length; i++) r.backend.emit(rxFrames[rxNext++]);
              for (let i = 0; i < 3 && txNext < txFrames.length && r.drv.queue(NetQueue.TX).freeDescriptors > 0; i++) r.transmit(txFrames[txNext++], { notify: false });
              r.drv.notify(NetQueue.TX);
              r.backend.writable();
              r.time.runDeferred();
              r.drv.takeUsed(NetQueue.TX);
              for (const g of r.takeRx()) got.push(g.frame);
            }
            expect(got.length).toBe(rxFrames.length);
            got.forEach((f, i) => expect(sameBytes(f, rxFrames[i])).toBe(true));
            expect(r.backend.sent.length).toBe(txFrames.length);
            r.backend.sent.forEach((f, i) => expect(sameBytes(f, txFrames[i])).toBe(true));
            expect(r.device.stats.rxDropped + r.device.stats.txDropped).toBe(0);
            expect(healthy(r)).toBe(true);
          },
        ),
        params,
      );
    },
    TIMEOUT,
  );
});
