export {
  DEFAULT_ACCEPT_TIMEOUT_MS,
  DEFAULT_BUF_ALLOC,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_GUEST_CID,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PENDING_RST,
  DEFAULT_QUEUE_SIZE,
  DEFAULT_SEND_HIGH_WATER_MARK,
  DEFAULT_SEND_QUEUE_LIMIT,
  HOST_PORT_END,
  HOST_PORT_FIRST,
  MAX_GUEST_CID,
  MAX_PACKET_PAYLOAD,
  MIN_GUEST_CID,
  PACKETS_PER_TURN,
  VsockDevice,
  type VsockDeviceOptions,
  type VsockListener,
  checkGuestCid,
} from './device.js';
export { type ConnectionPhase, VsockConnection } from './connection.js';
export { VsockError, type VsockErrorCode } from './errors.js';
export { ByteQueue, SEGMENT_BYTES } from './byte-queue.js';
export * from './layout.js';
