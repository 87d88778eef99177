export * from './cpio.js';
export * from './kconfig.js';
export * from './cache.js';
export * from './kernel.js';
export * from './initrd.js';
export * from './ext4.js';
export * from './test-contract.js';
export * from './test-disks.js';
export { guestDir, guestPath } from './paths.js';
