import type { QueueError } from '../src/errors.js';
import { ArrayGuestMemory } from '../src/memory.js';
import { SplitQueue } from '../src/queue.js';
import { TestDriver, type TestLayout, smallLayout } from './driver.js';

export interface QueueFixture {
  ram: Uint8Array;
  memory: ArrayGuestMemory;
  driver: TestDriver;
  queue: SplitQueue;
  interrupts: { count: number };
  broken: QueueError[];
  warnings: string[];
}

export function makeQueue(options: { layout?: Partial<TestLayout>; indirect?: boolean; eventIdx?: boolean; ramSize?: number } = {}): QueueFixture {
  const ram = new Uint8Array(options.ramSize ?? 0x10000);
  const memory = new ArrayGuestMemory(ram);
  const layout = { ...smallLayout, ...options.layout };
  const interrupts = { count: 0 };
  const broken: QueueError[] = [];
  const warnings: string[] = [];
  const queue = SplitQueue.create({
    index: 0,
    layout,
    maxSize: 1024,
    memory,
    eventIdx: options.eventIdx ?? false,
    indirect: options.indirect ?? true,
    interrupt: () => interrupts.count++,
    onBroken: (e) => broken.push(e),
    log: { warn: (m) => warnings.push(m) },
  });
  if (!(queue instanceof SplitQueue)) throw new Error(queue.message);
  return { ram, memory, driver: new TestDriver(ram, layout), queue, interrupts, broken, warnings };
}
