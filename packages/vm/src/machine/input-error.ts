/** Error code of a problem with what the user asked for (a disk that does not open, a device that is not KVM). */
export const INPUT_ERROR_CODE = 'ERR_HYPE_INPUT';

/** An error in the user's input, as opposed to a VMM failure: front ends report it as a usage error. */
export class VmInputError extends Error {
  override readonly name = 'VmInputError';
  readonly code = INPUT_ERROR_CODE;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
