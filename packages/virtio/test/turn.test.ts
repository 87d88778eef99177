import { describe, expect, it } from 'vitest';
import { DeferredWork, nextTurn } from '@hype/virtio';

describe('DeferredWork', () => {
  it('queues one turn however often it is scheduled, and runs the work on it', () => {
    const queued: (() => void)[] = [];
    let runs = 0;
    const work = new DeferredWork((cb) => queued.push(cb), () => 0, () => runs++);
    work.schedule();
    work.schedule();
    expect(queued).toHaveLength(1);
    queued.shift()!();
    expect(runs).toBe(1);
    work.schedule();
    expect(queued).toHaveLength(1);
  });

  it('a turn queued before the epoch moved on does nothing; cancel() lets a new one be queued', () => {
    const queued: (() => void)[] = [];
    let epoch = 0;
    let runs = 0;
    const work = new DeferredWork((cb) => queued.push(cb), () => epoch, () => runs++);
    work.schedule();
    epoch++;
    work.cancel();
    work.schedule();
    expect(queued).toHaveLength(2);
    queued.shift()!(); // stale
    expect(runs).toBe(0);
    queued.shift()!();
    expect(runs).toBe(1);
  });

  it('nextTurn runs the callback later, not now', async () => {
    let ran = false;
    await new Promise<void>((resolve) => {
      nextTurn(() => {
        ran = true;
        resolve();
      });
      expect(ran).toBe(false);
    });
    expect(ran).toBe(true);
  });
});
