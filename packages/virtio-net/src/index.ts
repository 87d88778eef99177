export {
  DEFAULT_MTU,
  DEFAULT_QUEUE_SIZE,
  DEFAULT_RX_QUEUE_BYTES,
  DEFAULT_RX_QUEUE_FRAMES,
  MAX_MTU,
  MIN_MTU,
  OFFERED_FEATURES,
  PACKETS_PER_TURN,
  RX_CHAINS_PER_TURN,
  VirtioNetDevice,
  type VirtioNetDeviceOptions,
} from './device.js';
export {
  DEFAULT_MEMORY_BACKEND_CAPACITY,
  Listeners,
  MemoryBackend,
  type MemoryBackendOptions,
  type NetBackend,
  createBackendPair,
  createLoopbackBackend,
} from './backend.js';
export {
  STREAM_LENGTH_BYTES,
  STREAM_MAX_FRAME,
  StreamFrameDecoder,
  StreamFrameError,
  encodeStreamFrame,
} from './stream-framing.js';
export * from './layout.js';
export { type PortForward, sameHostPort } from './port-forward.js';
