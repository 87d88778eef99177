// @hype/virtio/testing: the driver side of virtio, for testing devices (this package's own and
// third-party ones) the way a guest drives them. Node-free like the rest of the package.
export { BumpAllocator } from './allocator.js';
export {
  type BufSpec,
  type DescSpec,
  DriverQueue,
  RING_PAGE,
  type UsedElem,
  chainBuffersOf,
  queueLayoutAt,
  writtenBytes,
} from './driver-queue.js';
export { FakeClock } from './fake-clock.js';
export { bringUp, readDeviceFeatures, setupQueue, writeDriverFeatures } from './mmio-sequence.js';
export {
  DEFAULT_TEST_QUEUE_SIZE,
  DEFAULT_TEST_RAM_SIZE,
  type SubmitOptions,
  TEST_RINGS_BASE,
  VirtioTestDriver,
  type VirtioTestDriverOptions,
} from './test-driver.js';
