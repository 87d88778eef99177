export * from './addon.js';
export * from './constants.js';
export * from './ioctls.js';
export * from './pio-read-mirror.js';
export * from './tun.js';
export * as layout from './layout.js';
export { layouts } from './layout.js';
