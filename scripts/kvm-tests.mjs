#!/usr/bin/env node
// The tests that need /dev/kvm, run for real on a host without it. `vitest run` runs them where
// /dev/kvm exists (and they skip, saying so, where it does not); on such a host this runs them again
// inside scripts/kvm-in-qemu.sh, a QEMU/TCG machine with SVM whose Linux has a real /dev/kvm.
// HYPE_KVM_IN_QEMU=0 turns that off; without qemu-system-x86_64 it says why and does nothing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const KVM_TEST_FILES = [
  'packages/kvm/test/guests.test.ts',
  'packages/vm/test/guest-boot.test.ts',
  'apps/cli/test/e2e-boot.test.ts',
];

const say = (message) => console.log(`[hype] kvm-tests: ${message}`);

if (existsSync('/dev/kvm')) {
  say('/dev/kvm present: the KVM tests ran in the main vitest run');
  process.exit(0);
}
if (process.env.HYPE_KVM_IN_QEMU === '0') {
  say('/dev/kvm absent and HYPE_KVM_IN_QEMU=0: KVM tests not run');
  process.exit(0);
}
if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) {
  say('/dev/kvm absent and qemu-system-x86_64 not installed (apt-get install qemu-system-x86): KVM tests not run');
  process.exit(0);
}
say(`/dev/kvm absent: running ${KVM_TEST_FILES.length} KVM test files under nested KVM (scripts/kvm-in-qemu.sh; slow)`);
const inner = `test -c /dev/kvm || { echo '/dev/kvm missing inside the rig' >&2; exit 125; }; pnpm vitest run ${KVM_TEST_FILES.join(' ')}`;
// TCG's emulation of nested SVM has been seen to wedge L1 (a soft lockup in KVM_RUN, no progress) about
// one run in four; the runs that progress take 2-3 minutes. So each attempt has a time limit, and an
// attempt that hit it (not one whose tests failed) is tried once more in a fresh L1.
const ATTEMPT_LIMIT_S = Number(process.env.HYPE_KVM_TESTS_TIMEOUT_S ?? 600);
const TIMED_OUT = 124; // timeout(1)
let status = 1;
for (let attempt = 1; attempt <= 2; attempt++) {
  const result = spawnSync('timeout', ['--kill-after=30', String(ATTEMPT_LIMIT_S), join(root, 'scripts/kvm-in-qemu.sh'), 'sh', '-c', inner], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.error) throw result.error;
  status = result.status ?? 1;
  if (status !== TIMED_OUT && status !== 137) break;
  say(`attempt ${attempt}: no result within ${ATTEMPT_LIMIT_S} s (the emulated machine stalled)${attempt === 1 ? '; trying once more' : ''}`);
}
process.exit(status);
