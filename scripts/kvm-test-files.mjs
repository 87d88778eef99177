/** The test files that need /dev/kvm (run in the rig by kvm-tests.mjs where it is absent). */
export const KVM_TEST_FILES = [
  'packages/kvm/test/guests.test.ts',
  'packages/vm/test/guest-boot.test.ts',
  'apps/cli/test/e2e-boot.test.ts',
];

/**
 * The test files that boot a guest under QEMU (the nested rig, or QEMU as the reference emulator) and
 * build the default guest kernel or fetch a distribution kernel for it.
 */
export const QEMU_TEST_FILES = [
  'guest/test/qemu-boot.test.ts',
  'apps/cli/test/e2e-nested.test.ts',
  'apps/cli/test/e2e-stock-kernel.test.ts',
];

/** Tests that pack and install every package (slow, and they need the built dist/ and the prebuild). */
export const PACKAGING_TEST_FILES = ['scripts/test/pack-install.test.ts'];

/**
 * Everything that boots a real guest (and so may build the kernel first): the vitest project `system`.
 * The rest is the project `unit` (`pnpm test:unit`), which needs neither KVM, QEMU nor a kernel build.
 */
export const SYSTEM_TEST_FILES = [...KVM_TEST_FILES, ...QEMU_TEST_FILES, ...PACKAGING_TEST_FILES];
