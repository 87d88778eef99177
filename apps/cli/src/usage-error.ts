/**
 * A problem with what the user gave us (flags, config file, input files, host setup): printed as one line
 * `hype: <message>` and the process exits with code 2. The message names the flag or file and what to do.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function isUsageError(value: unknown): value is UsageError {
  return value instanceof UsageError;
}
