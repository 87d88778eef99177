import { describe, expect, it } from 'vitest';
import { ArrayGuestMemory } from '../src/memory.js';
import { SplitQueue, validateQueueLayout } from '../src/queue.js';
import { AVAIL_F_NO_INTERRUPT, DescFlag, USED_F_NO_NOTIFY } from '../src/ring-layout.js';
import { DATA, makeQueue, smallLayout } from './setup.js';

const { WRITE } = DescFlag;

describe('queue layout checks', () => {
  const memory = new ArrayGuestMemory(new Uint8Array(0x10000));
  const check = (patch: Partial<typeof smallLayout>, maxSize = 256) =>
    validateQueueLayout(2, { ...smallLayout, ...patch }, maxSize, memory)?.kind;

  it('accepts a well-formed layout', () => {
    expect(check({})).toBeUndefined();
    expect(check({ size: 1 })).toBeUndefined();
    expect(check({ size: 256 })).toBeUndefined();
  });
  it('queue size 0', () => expect(check({ size: 0 })).toBe('size-zero'));
  it('queue size not a power of two', () => {
    expect(check({ size: 3 })).toBe('size-not-power-of-two');
    expect(check({ size: 255 })).toBe('size-not-power-of-two');
  });
  it('queue size above the maximum', () => {
    expect(check({ size: 512 })).toBe('size-too-large');
    expect(check({ size: 65536 }, 1 << 20)).toBe('size-too-large');
  });
  it('misaligned descriptor table (16)', () => expect(check({ descAddr: 0x1008 })).toBe('desc-misaligned'));
  it('misaligned driver area (2)', () => expect(check({ availAddr: 0x2001 })).toBe('avail-misaligned'));
  it('misaligned device area (4)', () => expect(check({ usedAddr: 0x3002 })).toBe('used-misaligned'));
  it('rings outside guest RAM', () => {
    expect(check({ descAddr: 0x10000 - 0x80 })).toBe('desc-outside-memory');
    expect(check({ availAddr: 0x10000 - 4 })).toBe('avail-outside-memory');
    expect(check({ usedAddr: 0x10000 - 4 })).toBe('used-outside-memory');
    // joinAddress gives -1 for addresses >= 2^52: reported as misaligned/outside, never accessed.
    expect(check({ usedAddr: -1 })).toBe('used-misaligned');
  });
  it('messages name the queue and the value', () => {
    expect(validateQueueLayout(2, { ...smallLayout, size: 3 }, 256, memory)?.message).toBe('virtio queue 2: queue size 3 is not a power of two');
  });
  it('SplitQueue.create returns the error instead of a queue', () => {
    const result = SplitQueue.create({
      index: 0,
      layout: { ...smallLayout, size: 0 },
      maxSize: 16,
      memory,
      eventIdx: false,
      indirect: false,
      interrupt: () => {},
    });
    expect(result).not.toBeInstanceOf(SplitQueue);
    expect((result as { kind: string }).kind).toBe('size-zero');
  });
});

describe('split queue: pop and used ring', () => {
  it('pops chains in avail order and publishes used entries in completion order', () => {
    const f = makeQueue();
    for (const head of [2, 5, 9]) {
      f.driver.setDesc(head, { addr: DATA + head * 0x100, len: 0x100, flags: WRITE });
      f.driver.publish(head);
    }
    expect(f.queue.pending()).toBe(3);
    const a = f.queue.popChain()!;
    const b = f.queue.popChain()!;
    const c = f.queue.popChain()!;
    expect([a.head, b.head, c.head]).toEqual([2, 5, 9]);
    expect(f.queue.popChain()).toBeNull();
    expect(f.queue.inFlight).toBe(3);
    // Complete out of order (async I/O).
    expect(f.queue.addUsed(c, 10)).toBe(true);
    expect(f.queue.addUsed(a, 20)).toBe(true);
    expect(f.driver.usedIdx).toBe(2);
    expect([f.driver.used(0), f.driver.used(1)]).toEqual([
      { id: 9, len: 10 },
      { id: 2, len: 20 },
    ]);
    expect(f.queue.inFlight).toBe(1);
    expect(f.queue.addUsed(b, 0)).toBe(true);
    expect(f.driver.usedIdx).toBe(3);
  });

  it('refuses to complete the same chain twice', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 4, flags: WRITE });
    f.driver.publish(0);
    const chain = f.queue.popChain()!;
    expect(f.queue.addUsed(chain, 1)).toBe(true);
    expect(f.queue.addUsed(chain, 1)).toBe(false);
    expect(f.driver.usedIdx).toBe(1);
  });

  it('clamps a used length above the writable length', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 4, flags: WRITE });
    f.driver.publish(0);
    f.queue.addUsed(f.queue.popChain()!, 100);
    expect(f.driver.used(0).len).toBe(4);
  });

  it('wraps the u16 indices around 65536', () => {
    const f = makeQueue({ layout: { size: 4 } });
    f.driver.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
    for (let i = 0; i < 70000; i++) {
      f.driver.publish(0);
      const chain = f.queue.popChain();
      expect(chain?.head).toBe(0);
      f.queue.addUsed(chain!, 1);
    }
    expect(f.queue.lastAvailIdx).toBe(70000 & 0xffff);
    expect(f.driver.usedIdx).toBe(70000 & 0xffff);
    expect(f.broken).toEqual([]);
  });

  it('avail idx jumping more than the queue size ahead breaks the queue (needs reset)', () => {
    const f = makeQueue();
    f.driver.setAvailIdx(17);
    expect(f.queue.pop()).toBeNull();
    expect(f.broken.map((e) => e.kind)).toEqual(['avail-idx-jump']);
    expect(f.queue.isLive).toBe(false);
    // Stays broken; reported once.
    f.driver.setAvailIdx(1);
    expect(f.queue.pop()).toBeNull();
    expect(f.broken).toHaveLength(1);
  });

  it('avail idx exactly queue size ahead is fine', () => {
    const f = makeQueue();
    for (let head = 0; head < 16; head++) {
      f.driver.setDesc(head, { addr: DATA + head, len: 1 });
      f.driver.publish(head);
    }
    let n = 0;
    while (f.queue.popChain() !== null) n++;
    expect(n).toBe(16);
    expect(f.queue.inFlight).toBe(16);
    expect(f.broken).toEqual([]);
  });

  it('a head made available again while in flight breaks the queue: never more than queue-size chains in flight', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    f.driver.setAvailIdx(16); // ring entries are all 0 = head 0, sixteen times
    const first = f.queue.popChain();
    expect(first?.head).toBe(0);
    expect(f.queue.popChain()).toBeNull();
    expect(f.broken.map((e) => e.kind)).toEqual(['head-in-flight']);
    expect(f.queue.inFlight).toBe(1);
  });

  it('a head may come back once the device used it', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    for (let round = 0; round < 40; round++) {
      f.driver.publish(0);
      const chain = f.queue.popChain();
      expect(chain?.head).toBe(0);
      f.queue.addUsed(chain!, 0);
    }
    expect(f.broken).toEqual([]);
    expect(f.queue.inFlight).toBe(0);
  });

  it('a head index >= queue size in the avail ring breaks the queue', () => {
    const f = makeQueue();
    f.driver.publish(16);
    expect(f.queue.pop()).toBeNull();
    expect(f.broken.map((e) => e.kind)).toEqual(['head-out-of-range']);
    expect(f.driver.usedIdx).toBe(0);
  });

  it('after stop() (reset) nothing is popped and late completions are dropped', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 4, flags: WRITE });
    f.driver.publish(0);
    f.driver.publish(0);
    const chain = f.queue.popChain()!;
    f.queue.stop();
    expect(f.queue.pop()).toBeNull();
    expect(f.queue.addUsed(chain, 4)).toBe(false);
    expect(f.driver.usedIdx).toBe(0);
    expect(f.queue.interruptIfNeeded()).toBe(false);
  });

  it('a chain from another queue instance (an earlier activation) is refused', () => {
    const f = makeQueue();
    f.driver.setDesc(0, { addr: DATA, len: 4, flags: WRITE });
    f.driver.publish(0);
    const old = f.queue.popChain()!;
    const fresh = SplitQueue.create({
      index: 0,
      layout: smallLayout,
      maxSize: 16,
      memory: f.memory,
      eventIdx: false,
      indirect: true,
      interrupt: () => {},
    }) as SplitQueue;
    expect(fresh.addUsed(old, 4)).toBe(false);
    expect(f.driver.usedIdx).toBe(0);
  });
});

describe('split queue: interrupt suppression', () => {
  it('without EVENT_IDX: interrupts after adding, unless VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
    const f = makeQueue({ eventIdx: false });
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    expect(f.queue.interruptIfNeeded()).toBe(false); // nothing added
    f.driver.publish(0);
    f.queue.addUsed(f.queue.popChain()!, 0);
    expect(f.queue.interruptIfNeeded()).toBe(true);
    expect(f.interrupts.count).toBe(1);
    f.driver.setAvailFlags(AVAIL_F_NO_INTERRUPT);
    f.driver.publish(0);
    f.queue.addUsed(f.queue.popChain()!, 0);
    expect(f.queue.interruptIfNeeded()).toBe(false);
    expect(f.interrupts.count).toBe(1);
  });

  it('with EVENT_IDX: interrupts exactly when used_event is crossed', () => {
    const f = makeQueue({ eventIdx: true });
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    const complete = (n: number) => {
      for (let i = 0; i < n; i++) {
        f.driver.publish(0);
        f.queue.addUsed(f.queue.popChain()!, 0);
      }
    };
    // The first decision always interrupts (no previous signal to compare with).
    complete(1);
    expect(f.queue.interruptIfNeeded()).toBe(true);
    // Driver wants an interrupt once used idx passes 3 (i.e. when entry 3 is used).
    f.driver.setUsedEvent(3);
    complete(1); // used idx 2: entry 1 used
    expect(f.queue.interruptIfNeeded()).toBe(false);
    complete(1); // used idx 3: entry 2
    expect(f.queue.interruptIfNeeded()).toBe(false);
    complete(2); // used idx 5: entries 3 and 4 -> crossed
    expect(f.queue.interruptIfNeeded()).toBe(true);
    complete(1);
    expect(f.queue.interruptIfNeeded()).toBe(false); // used_event 3 is behind
    // AVAIL_F_NO_INTERRUPT is ignored with EVENT_IDX.
    f.driver.setAvailFlags(AVAIL_F_NO_INTERRUPT);
    f.driver.setUsedEvent(6);
    complete(1);
    expect(f.queue.interruptIfNeeded()).toBe(true);
    expect(f.interrupts.count).toBe(3);
  });

  it('with EVENT_IDX: u16 wrap-around of used_event and used idx', () => {
    const f = makeQueue({ eventIdx: true, layout: { size: 4 } });
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    const complete = () => {
      f.driver.publish(0);
      f.queue.addUsed(f.queue.popChain()!, 0);
    };
    for (let i = 0; i < 65534; i++) complete();
    f.queue.interruptIfNeeded(); // signalled at 65534
    f.driver.setUsedEvent(0); // interrupt when entry 0 (index 65536 mod 2^16) is used
    complete(); // idx 65535: entry 65534 used
    expect(f.queue.interruptIfNeeded()).toBe(false);
    complete(); // idx 0: entry 65535 used
    expect(f.queue.interruptIfNeeded()).toBe(false);
    complete(); // idx 1: entry 0 used -> crossed
    expect(f.queue.interruptIfNeeded()).toBe(true);
    expect(f.driver.usedIdx).toBe(1);
  });

  it('with EVENT_IDX: avail_event is set to last_avail_idx when the ring is found empty', () => {
    const f = makeQueue({ eventIdx: true });
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    f.driver.setDesc(1, { addr: DATA, len: 1 });
    f.driver.publish(0);
    f.driver.publish(1);
    f.queue.popChain();
    f.queue.popChain();
    expect(f.queue.popChain()).toBeNull();
    expect(f.driver.availEvent).toBe(2);
  });

  it('without EVENT_IDX: disable/enable notifications through used.flags', () => {
    const f = makeQueue({ eventIdx: false });
    f.queue.disableNotifications();
    expect(f.driver.usedFlags).toBe(USED_F_NO_NOTIFY);
    f.driver.setDesc(0, { addr: DATA, len: 1 });
    f.driver.publish(0);
    // enable reports work that arrived while notifications were off
    expect(f.queue.enableNotifications()).toBe(true);
    expect(f.driver.usedFlags).toBe(0);
    f.queue.popChain();
    expect(f.queue.enableNotifications()).toBe(false);
  });
});
