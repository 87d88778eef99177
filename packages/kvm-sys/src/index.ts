export * from './addon.js';
export * from './constants.js';
export * from './ioctls.js';
export * as layout from './layout.js';
export { layouts } from './layout.js';
