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
import { KVM_TEST_FILES } from './kvm-test-files.mjs';

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
// The rig itself finds a stalled L1 within a minute and starts a fresh one (scripts/kvm-in-qemu.sh,
// KVM_IN_QEMU_ATTEMPTS); this time limit is only a backstop for a rig that misbehaves otherwise.
const LIMIT_S = Number(process.env.HYPE_KVM_TESTS_TIMEOUT_S ?? 1800);
const result = spawnSync('timeout', ['--kill-after=30', String(LIMIT_S), join(root, 'scripts/kvm-in-qemu.sh'), 'sh', '-c', inner], {
  cwd: root,
  stdio: ['ignore', 'inherit', 'inherit'],
});
if (result.error) throw result.error;
if (result.status === 124 || result.status === 137) say(`no result within ${LIMIT_S} s`);
process.exit(result.status ?? 1);
