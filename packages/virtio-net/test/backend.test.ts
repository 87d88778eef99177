// The in-memory backends: order, capacity and send()'s answer, onWritable, pause/resume, close of a
// pair, loopback. On fake time: delivery happens on deferred turns only.
import { FakeClock } from '@hype/virtio/testing';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MEMORY_BACKEND_CAPACITY, Listeners, createBackendPair, createLoopbackBackend } from '../src/index.js';
import { makeFrame } from './helpers.js';

function pair(capacity = 3) {
  const time = new FakeClock();
  const [a, b] = createBackendPair({ capacity, defer: time.defer });
  const got: Uint8Array[] = [];
  b.onFrame((f) => got.push(f));
  let writable = 0;
  a.onWritable(() => writable++);
  return { time, a, b, got, writable: () => writable };
}

describe('createBackendPair', () => {
  it('delivers in order on a later turn, never inside send()', () => {
    const { time, a, got } = pair(10);
    const frames = [makeFrame(60, 1), makeFrame(70, 2), makeFrame(80, 3)];
    for (const f of frames) expect(a.send(f)).toBe(true);
    expect(got).toHaveLength(0);
    time.runDeferred();
    expect(got).toEqual(frames);
    expect(a.sent).toBe(3);
  });

  it('send() says false at capacity; more is dropped; onWritable once the receiver took frames', () => {
    const { time, a, b, got, writable } = pair(3);
    b.pause();
    expect([a.send(makeFrame(60)), a.send(makeFrame(60)), a.send(makeFrame(60))]).toEqual([true, true, false]);
    expect(a.send(makeFrame(60))).toBe(false);
    expect(a.dropped).toBe(1);
    time.runDeferred();
    expect(got).toHaveLength(0);
    expect(b.pending).toBe(3);
    expect(writable()).toBe(0);
    b.resume();
    time.runDeferred();
    expect(got).toHaveLength(3);
    expect(writable()).toBe(1);
  });

  it('holds frames until the receiver subscribes', () => {
    const time = new FakeClock();
    const [a, b] = createBackendPair({ defer: time.defer });
    a.send(makeFrame(60));
    time.runDeferred();
    expect(b.pending).toBe(1);
    const got: Uint8Array[] = [];
    b.onFrame((f) => got.push(f));
    time.runDeferred();
    expect(got).toHaveLength(1);
    expect(DEFAULT_MEMORY_BACKEND_CAPACITY).toBe(64);
  });

  it('closing one end closes both: onClose on each, later frames dropped, send() does not block', () => {
    const { time, a, b, got } = pair();
    const closes: string[] = [];
    a.onClose(() => closes.push('a'));
    b.onClose(() => closes.push('b'));
    a.send(makeFrame(60));
    b.close();
    time.runDeferred();
    expect(closes.sort()).toEqual(['a', 'b']);
    expect(got).toHaveLength(0);
    expect(a.send(makeFrame(60))).toBe(true);
    expect(a.isClosed && b.isClosed).toBe(true);
  });

  it('checks its capacity', () => {
    expect(() => createBackendPair({ capacity: 0 })).toThrow(RangeError);
    expect(() => createLoopbackBackend({ capacity: 1.5 })).toThrow(RangeError);
  });
});

describe('createLoopbackBackend', () => {
  it('sends frames back to its own receiver', () => {
    const time = new FakeClock();
    const loop = createLoopbackBackend({ defer: time.defer });
    const got: Uint8Array[] = [];
    loop.onFrame((f) => got.push(f));
    const f = makeFrame(100);
    loop.send(f);
    time.runDeferred();
    expect(got).toEqual([f]);
  });
});

describe('Listeners', () => {
  it('adds, removes, emits to a snapshot', () => {
    const l = new Listeners<[number]>();
    const seen: number[] = [];
    const off = l.add((n) => seen.push(n));
    l.add((n) => {
      seen.push(n * 10);
      off(); // removing during emit does not skip anyone this time
    });
    l.emit(1);
    l.emit(2);
    expect(seen).toEqual([1, 10, 20]);
    expect(l.size).toBe(1);
    expect(() => l.add(42 as never)).toThrow(TypeError);
  });
});
