#!/usr/bin/env node
// `pnpm bench`: bench/run.mjs, and on a host without /dev/kvm the benchmarks that need it run under
// nested KVM (scripts/kvm-in-qemu.sh) instead of being skipped. Their ratios are then measured inside an
// emulated machine (QEMU/TCG): both sides of each ratio run there, but the absolute numbers mean
// nothing, and the report says so. HYPE_KVM_IN_QEMU=0 keeps them skipped.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const KVM_BENCHMARKS = ['handoff', 'boot', 'memory', 'ddread', 'exec', 'cfloor', 'net'];
const ALL = ['handoff', 'blk', 'hostile', 'boot', 'memory', 'ddread', 'exec', 'cfloor', 'net'];

const requested = process.argv.slice(2);
const selected = requested.length > 0 ? requested : ALL;
const run = (command, args) => spawnSync(command, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] }).status ?? 1;

const nested =
  !existsSync('/dev/kvm') &&
  process.env.HYPE_KVM_IN_QEMU !== '0' &&
  spawnSync('qemu-system-x86_64', ['--version']).status === 0;
if (!nested) process.exit(run('node', ['bench/run.mjs', ...requested]));

const onHost = selected.filter((b) => !KVM_BENCHMARKS.includes(b));
const underNestedKvm = selected.filter((b) => KVM_BENCHMARKS.includes(b));
let status = 0;
if (onHost.length > 0) status = run('node', ['bench/run.mjs', ...onHost]);
if (underNestedKvm.length > 0) {
  console.log(
    '\n[hype] /dev/kvm absent: the KVM benchmarks run under nested KVM (scripts/kvm-in-qemu.sh, QEMU/TCG).\n' +
      '[hype] Ratios compare hype with a baseline measured in the same emulated machine; absolute times mean nothing.\n',
  );
  status = run(join(root, 'scripts/kvm-in-qemu.sh'), ['node', 'bench/run.mjs', ...underNestedKvm]) || status;
}
process.exit(status);
