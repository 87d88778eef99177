/** The test files that need /dev/kvm (run in the rig by kvm-tests.mjs where it is absent). */
export const KVM_TEST_FILES = [
  'packages/kvm/test/guests.test.ts',
  'packages/vm/test/guest-boot.test.ts',
  'apps/cli/test/e2e-boot.test.ts',
];
