/** What went wrong, for callers that react differently (e.g. the CLI suggests --mem on `memory`). */
export type LoaderErrorKind =
  | 'format' // not a bzImage/ELF, truncated, corrupt
  | 'unsupported' // a valid file this loader cannot boot (too old, 32-bit only, ...)
  | 'memory' // guest RAM too small or an address outside it
  | 'cmdline' // command line too long or not encodable
  | 'decompress'; // payload decompression failed

/** A one-line error that names the file or setting at fault and, where possible, what to do. */
export class LoaderError extends Error {
  override readonly name = 'LoaderError';
  constructor(
    readonly kind: LoaderErrorKind,
    message: string,
    /** For `memory` errors: the guest RAM size in MiB that would be enough. */
    readonly neededMiB?: number,
  ) {
    super(message);
  }
}

export const hex = (n: number): string => `0x${n.toString(16)}`;

export function formatMiB(bytes: number): string {
  const mib = bytes / (1 << 20);
  return Number.isInteger(mib) ? `${mib} MiB` : `${mib.toFixed(1)} MiB`;
}
