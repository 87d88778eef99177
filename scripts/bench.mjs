#!/usr/bin/env node
// `pnpm bench`: bench/run.mjs, and on a host without /dev/kvm the benchmarks that need it run under
// nested KVM (scripts/kvm-in-qemu.sh) instead of being skipped; on a kvm_pvm host, so does the one that
// needs ordinary KVM (cfloor). Their ratios are then measured inside an emulated machine (QEMU/TCG): both
// sides of each ratio run there, but the absolute numbers mean nothing, and the report says so.
// HYPE_KVM_IN_QEMU=0 keeps everything on this host (what cannot run skips itself).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kvmIsPvm } from '../bench/lib/hype.mjs';
import { ALL_BENCHMARKS, planBench } from './bench-plan.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const requested = process.argv.slice(2);
const selected = requested.length > 0 ? requested : ALL_BENCHMARKS;
const run = (command, args, env = process.env) => spawnSync(command, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] }).status ?? 1;

const kvm = existsSync('/dev/kvm');
const host = {
  kvm,
  pvm: kvm && kvmIsPvm(),
  rig: process.env.HYPE_KVM_IN_QEMU !== '0' && spawnSync('qemu-system-x86_64', ['--version']).status === 0,
};
const { onHost, inRig } = planBench(selected, host);
if (inRig.length === 0) process.exit(run('node', ['bench/run.mjs', ...requested]));

let status = 0;
if (onHost.length > 0) status = run('node', ['bench/run.mjs', ...onHost]);
console.log(
  `\n[hype] ${host.kvm ? "this host's /dev/kvm is kvm_pvm's" : '/dev/kvm absent'}: ${inRig.join(', ')} run${inRig.length === 1 ? 's' : ''} under nested KVM (scripts/kvm-in-qemu.sh, QEMU/TCG).\n` +
    '[hype] Ratios compare hype with a baseline measured in the same emulated machine; absolute times mean nothing.\n',
);
// The rig throws its writes away but for the directories it shares read-write: the nested run's JSON
// report goes to one of those, beside the host run's report rather than over it.
const report = resolve(process.env.HYPE_BENCH_REPORT || join(root, 'bench/results/latest.json'));
const nestedReport = onHost.length > 0 ? report.replace(/(\.json)?$/, '-nested.json') : report;
mkdirSync(dirname(nestedReport), { recursive: true });
const shared = [process.env.KVM_IN_QEMU_RW, dirname(nestedReport)].filter(Boolean).join(':');
const rigEnv = { ...process.env, KVM_IN_QEMU_RW: shared, HYPE_BENCH_REPORT: nestedReport };
status = run(join(root, 'scripts/kvm-in-qemu.sh'), ['node', 'bench/run.mjs', ...inRig], rigEnv) || status;
process.exit(status);
