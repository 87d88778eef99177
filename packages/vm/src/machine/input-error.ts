/** Error code of a problem with what the user asked for (a kernel that does not load, a device that is not KVM). */
export const INPUT_ERROR_CODE = 'ERR_HYPE_INPUT';

/**
 * What the input problem is about: the KVM device, the VM's shape (vCPUs, memory), the kernel, initrd or
 * command line (the loader's LoaderError is the `cause`), or a device (a disk that does not open, too many).
 */
export type VmInputErrorKind = 'kvm-device' | 'config' | 'boot' | 'device';

/**
 * An error in the user's input, as opposed to a VMM failure: front ends report it as a usage error.
 * Errors of the lower packages that are the user's to fix (LoaderError, KvmError on opening the device)
 * reach callers wrapped in this class, the original as `cause`.
 */
export class VmInputError extends Error {
  override readonly name = 'VmInputError';
  readonly code = INPUT_ERROR_CODE;

  constructor(
    readonly kind: VmInputErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
