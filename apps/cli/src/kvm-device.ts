import { errnoCode, R_OK, W_OK, type HostFs } from './host-fs.js';

export const DEFAULT_KVM_DEVICE = '/dev/kvm';

/** The KVM device the CLI checks: $HYPE_KVM_DEVICE or /dev/kvm. */
export function kvmDevicePath(env: Record<string, string | undefined>): string {
  const fromEnv = env.HYPE_KVM_DEVICE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_KVM_DEVICE;
}

/**
 * Checks that the KVM device exists and that we may open it read-write. Returns the one-line problem
 * and what to do, or undefined when it is usable.
 */
export async function checkKvmDevice(path: string, fs: HostFs): Promise<string | undefined> {
  try {
    await fs.access(path, R_OK | W_OK);
    return undefined;
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return (
        `${path} not found: this host has no KVM; load the kvm_intel or kvm_amd module, enable virtualization ` +
        'in the firmware, or on a cloud VM enable nested virtualization'
      );
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return `${path}: permission denied; add your user to the kvm group: sudo usermod -aG kvm $USER (then log in again)`;
    }
    return `${path}: cannot open: ${(error as Error).message}`;
  }
}
