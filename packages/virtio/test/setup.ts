import type { QueueError } from '../src/errors.js';
import { ArrayGuestMemory } from '../src/memory.js';
import { type QueueLayout, SplitQueue } from '../src/queue.js';
import { DriverQueue } from '../src/testing/index.js';

/** The layout most tests use: a 16-entry queue in the first pages of a 64 KiB RAM. */
export const smallLayout: QueueLayout = { size: 16, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000 };
/** Data buffers in tests live from here on. */
export const DATA = 0x8000;

export interface QueueFixture {
  ram: Uint8Array;
  memory: ArrayGuestMemory;
  driver: DriverQueue;
  queue: SplitQueue;
  interrupts: { count: number };
  broken: QueueError[];
  warnings: string[];
}

export function makeQueue(options: { layout?: Partial<QueueLayout>; indirect?: boolean; eventIdx?: boolean; ramSize?: number } = {}): QueueFixture {
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
  return { ram, memory, driver: new DriverQueue(memory, layout), queue, interrupts, broken, warnings };
}
