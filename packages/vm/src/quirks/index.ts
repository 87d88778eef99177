export * from './detect.js';
export * from './cmdline.js';
export * from './fallbacks.js';
export * from './syscall-entry.js';
export * from './host-quirks.js';
