import { describe, expect, it } from 'vitest';
import { EventFd } from '../src/index.js';

describe('EventFd', () => {
  it('reads what was written, then 0n', () => {
    using eventFd = new EventFd();
    eventFd.write();
    eventFd.write(41n);
    expect(eventFd.read()).toBe(42n);
    expect(eventFd.read()).toBe(0n);
  });

  it('watch() delivers drained counts on the event loop', async () => {
    const eventFd = new EventFd();
    const counts: bigint[] = [];
    const got = new Promise<void>((resolve) => {
      eventFd.watch((count) => {
        counts.push(count);
        resolve();
      });
    });
    eventFd.write(3);
    await got;
    expect(counts).toEqual([3n]);
    expect(() => eventFd.watch(() => {})).toThrow(/already watched/);
    eventFd.close();
    expect(eventFd.closed).toBe(true);
    expect(() => eventFd.write()).toThrow('EventFd is closed');
  });

  it('an unref()ed watch does not keep the loop alive; closing stops deliveries', async () => {
    const eventFd = new EventFd();
    let calls = 0;
    const watch = eventFd.watch(() => calls++);
    watch.unref();
    watch.ref();
    watch.close();
    eventFd.write();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toBe(0);
    expect(eventFd.read()).toBe(1n);
    eventFd[Symbol.dispose]();
  });
});
