export * from './layout.js';
export type { BlockBackend } from './backend.js';
export { MemoryBackend, type MemoryBackendOptions } from './memory-backend.js';
export { FileBackend, type FileBackendOptions, type FileHandleLike } from './file-backend.js';
export { HttpBackend, type HttpBackendOptions, type FetchLike, type HttpResponseLike } from './http-backend.js';
export { parseRequest, parseRequestViews } from './request.js';
export type { BlkRequest, BlkRequestLimits, DiskRange, ParsedRequest, RejectedRequest, UnanswerableRequest } from './request.js';
// The shared vocabulary, re-exported for callers of parseRequest: one definition each, in
// @hype/guest-memory and @hype/virtio.
export type { GuestMemory } from '@hype/guest-memory';
export type { ChainBuffer } from '@hype/virtio';
export { executeRequest, READ_BOUNCE_BYTES, serveChain, writeStatus, type BlkOutcome, type ServedChain, type StillOwned } from './execute.js';
export { buildConfigSpace, checkLimits, defaultLimits, DEFAULT_QUEUE_SIZE, requestLimitsFor, type BlkLimits } from './config.js';
export { defaultSerial, encodeSerial } from './serial.js';
export { REQUESTS_PER_TURN, VirtioBlkDevice, type VirtioBlkOptions } from './device.js';
