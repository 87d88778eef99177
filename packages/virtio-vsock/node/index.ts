// @hype/virtio-vsock/node: the Node.js side of the vsock device: a stream.Duplex over a connection and
// Firecracker's Unix-socket bridge. The core entry point stays free of node:* imports.
export { type ToDuplexOptions, toDuplex } from './duplex.js';
export {
  CONNECT_LINE_MAX,
  DEFAULT_CONNECT_LINE_TIMEOUT_MS,
  VsockUnixBridge,
  type VsockUnixBridgeOptions,
  parseConnectLine,
} from './unix-bridge.js';
