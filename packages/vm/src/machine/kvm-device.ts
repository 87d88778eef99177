import { Kvm, KvmError } from '@hype/kvm';
import { VmInputError } from './input-error.js';

/**
 * Whether `path` is a KVM device this process can use: it opens read-write and answers
 * KVM_GET_API_VERSION with the supported version. Returns the one-line problem, or undefined.
 */
export function probeKvmDevice(path = '/dev/kvm'): string | undefined {
  try {
    openKvm(path).close();
    return undefined;
  } catch (error) {
    if (error instanceof VmInputError) return error.message;
    return `${path}: ${(error as Error).message}`;
  }
}

/** Kvm.open, with a missing, inaccessible or non-KVM device reported as the user's input error. */
export function openKvm(path: string): Kvm {
  try {
    return Kvm.open(path);
  } catch (error) {
    if (!(error instanceof KvmError)) {
      // Kvm's constructor throws a plain Error for an unsupported API version.
      if (error instanceof Error && error.message.startsWith('KVM API version')) {
        throw new VmInputError('kvm-device', `${path}: ${error.message}`, { cause: error });
      }
      throw error;
    }
    const message = error.operation.startsWith('open') ? error.message : `${path} is not a KVM device (${error.message})`;
    throw new VmInputError('kvm-device', message, { cause: error });
  }
}
