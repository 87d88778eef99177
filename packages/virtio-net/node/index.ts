// @hype/virtio-net/node: the Node.js backends of the virtio-net device. The core entry point stays free
// of node:* imports.
export {
  type ConnectStreamBackendOptions,
  StreamBackend,
  type StreamBackendOptions,
  connectStreamBackend,
} from './stream-backend.js';
export {
  PASST_DEFAULT_ADDRESS,
  PASST_DEFAULT_GATEWAY,
  PASST_DEFAULT_PREFIX_LENGTH,
  PasstBackend,
  PasstPortError,
  type PasstOptions,
  passtArguments,
  passtPortSpec,
  startPasst,
} from './passt.js';
export {
  DEFAULT_TAP_FRAMES_PER_WAKEUP,
  TAP_DEVICE_PATH,
  TAP_MAX_FRAME,
  TapBackend,
  type TapBackendOptions,
  TapError,
  checkTapName,
  openTapBackend,
} from './tap-backend.js';
// The forwards' type and check live in the Node-free core; re-exported here beside startPasst.
export { type PortForward, sameHostPort } from '../src/port-forward.js';
