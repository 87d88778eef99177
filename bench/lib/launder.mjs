// Gives every timed run the same memory to start from: before it, write (and free again) more memory than
// the previous run freed, untimed.
//
// Why (measured in the nested rig, QEMU/TCG): the first process to write fresh memory after a guest has
// run pays for it, 0.5-1.5 s for the 17 MiB of the default guest's kernel and initrd against ~0.1 s
// otherwise (a plain mmap + pread, 4 runs each way). The pages the exited VMM freed held code its guest
// ran, which QEMU had translated; the likely cost is QEMU dropping those translations on the first write.
// Real KVM has nothing of the kind, so without this every VMM start-up in the rig carried a 0.1-1.9 s
// rig-only term that fell on whichever side ran next. On a host it costs a few tens of ms per run.
import { spawnSync } from 'node:child_process';
import { intEnv } from './env.mjs';

/** MiB written before each timed run (HYPE_BENCH_LAUNDER_MIB, default 384; 0 turns it off). */
export function launderMib(env = process.env) {
  return intEnv('HYPE_BENCH_LAUNDER_MIB', 384, 0, 65_536, env);
}

/** Writes `mib` MiB of fresh memory once (dd's buffer, zeroed by reading /dev/zero) and frees it. */
export function launderFreedMemory(mib = launderMib(), env = process.env) {
  if (mib === 0) return;
  const args = ['if=/dev/zero', 'of=/dev/null', `bs=${mib}M`, 'count=1', 'status=none'];
  const r = spawnSync('dd', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
  if (r.error) throw new Error(`dd (writing ${mib} MiB before a timed run): ${r.error.message}; HYPE_BENCH_LAUNDER_MIB=0 skips this step`);
  if (r.status !== 0) throw new Error(`dd bs=${mib}M (before a timed run) failed: ${r.stderr.trim() || `exit status ${r.status}`}; HYPE_BENCH_LAUNDER_MIB=0 skips this step`);
}
