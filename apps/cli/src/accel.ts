/**
 * --accel: where the VM runs. `kvm` is this host's KVM device; `nested` is the rig
 * (rig/kvm-in-qemu.sh: QEMU/TCG emulating a CPU with SVM, a Debian kernel with kvm_amd, and this same
 * hype command inside it); `auto` takes KVM when the device answers and the rig otherwise.
 */
import { UsageError } from './usage-error.js';

export const ACCELS = ['auto', 'kvm', 'nested'] as const;
export type Accel = (typeof ACCELS)[number];

export function parseAccel(value: string, flag: string): Accel {
  if ((ACCELS as readonly string[]).includes(value)) return value as Accel;
  throw new UsageError(`${flag} ${value}: use auto, kvm or nested`);
}

export type AccelChoice =
  | { kind: 'kvm' }
  /** `notice`: the one line to print on stderr before nesting. */
  | { kind: 'nested'; notice: string }
  | { kind: 'unusable'; message: string };

/**
 * Decides where to run from the KVM probe (undefined: usable, else the problem) and the rig's
 * availability (undefined: usable, else what is missing).
 */
export function chooseAccel(accel: Accel, kvmProblem: string | undefined, rigProblem: string | undefined): AccelChoice {
  switch (accel) {
    case 'kvm':
      return kvmProblem === undefined ? { kind: 'kvm' } : { kind: 'unusable', message: kvmProblem };
    case 'nested':
      return rigProblem === undefined
        ? { kind: 'nested', notice: 'running nested under QEMU emulation (--accel nested), expect a slow guest' }
        : { kind: 'unusable', message: `--accel nested: ${rigProblem}` };
    case 'auto':
      if (kvmProblem === undefined) return { kind: 'kvm' };
      if (rigProblem === undefined) {
        return { kind: 'nested', notice: `no usable KVM here (${kvmProblem}); running nested under QEMU emulation, expect a slow guest` };
      }
      return { kind: 'unusable', message: `${kvmProblem}; and the nested fallback is unavailable: ${rigProblem}` };
  }
}

/**
 * The directories the rig must share read-write so that writes to these disk files land on this host
 * (everything else in the rig is a throw-away overlay). Shortest first, so that a parent's mount does
 * not hide a child's; a directory inside another listed one is dropped.
 */
export function writableDiskDirs(diskPaths: readonly string[], dirname: (path: string) => string): string[] {
  const dirs = [...new Set(diskPaths.map(dirname))].sort((a, b) => a.length - b.length);
  return dirs.filter((dir, i) => !dirs.slice(0, i).some((parent) => parent === '/' || dir.startsWith(`${parent}/`)));
}
