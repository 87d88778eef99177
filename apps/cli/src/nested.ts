/**
 * Runs this hype command again inside the nested rig (rig/kvm-in-qemu.sh), with --accel kvm, on the
 * terminal as it is: the rig gives the inner hype a terminal when ours is one, passes the exit status
 * back, and uses 125 for its own failures.
 */
import type * as ChildProcess from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { NestedRig } from './ports.js';

/** rig/kvm-in-qemu.sh beside dist/ in the package. */
export const RIG_SCRIPT = fileURLToPath(new URL('../rig/kvm-in-qemu.sh', import.meta.url));

/** node:child_process when the rig is asked about or run: a run on KVM never loads it (nor node:net and node:dgram behind it). */
function childProcess(): typeof ChildProcess {
  return createRequire(import.meta.url)('node:child_process') as typeof ChildProcess;
}

export function processRig(binPath: string, env: NodeJS.ProcessEnv): NestedRig {
  return {
    problem() {
      if (!existsSync(RIG_SCRIPT)) return `${RIG_SCRIPT} is missing (a broken install)`;
      const qemu = env.KVM_IN_QEMU_QEMU ?? 'qemu-system-x86_64';
      if (childProcess().spawnSync(qemu, ['--version'], { stdio: 'ignore' }).status !== 0) {
        return `${qemu} is not installed (apt-get install qemu-system-x86 kmod busybox-static cpio, or bash scripts/setup.sh)`;
      }
      return undefined;
    },
    run(args, rwDirs) {
      return new Promise((resolve, reject) => {
        const childEnv = { ...env };
        if (rwDirs.length > 0) {
          childEnv.KVM_IN_QEMU_RW = [env.KVM_IN_QEMU_RW, ...rwDirs].filter((d) => d !== undefined && d !== '').join(':');
        }
        const child = childProcess().spawn('bash', [RIG_SCRIPT, process.execPath, binPath, ...args], { stdio: 'inherit', env: childEnv });
        child.on('error', reject);
        // A rig killed by a signal ends like a shell reports it: 128 + the signal's number.
        child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
      });
    },
  };
}
