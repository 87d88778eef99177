export {
  DEFAULT_QUEUE_SIZE,
  EntropyDevice,
  type EntropyDeviceOptions,
  type EntropySource,
  MAX_BYTES_PER_REQUEST,
  MAX_BYTES_PER_TURN,
  MAX_CHAINS_PER_TURN,
  MAX_TIMER_DELAY_MS,
  SCRATCH_BYTES,
  SOURCE_CHUNK_BYTES,
} from './device.js';
export { type RateLimit, TokenBucket, checkRateLimit } from './token-bucket.js';
