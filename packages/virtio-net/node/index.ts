// @hype/virtio-net/node: the Node.js backends of the virtio-net device. The core entry point stays free
// of node:* imports.
export {
  type ConnectStreamBackendOptions,
  StreamBackend,
  type StreamBackendOptions,
  connectStreamBackend,
} from './stream-backend.js';
