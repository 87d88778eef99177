import { LoaderError } from './errors.js';

/**
 * The command line as the NUL-terminated bytes the kernel reads. `maxLength` is the kernel's cmdline_size
 * (the longest command line it accepts, without the NUL).
 */
export function encodeCmdline(cmdline: string, maxLength: number, kernelName: string): Uint8Array {
  const text = new TextEncoder().encode(cmdline);
  if (text.includes(0)) throw new LoaderError('cmdline', 'kernel command line contains a NUL character');
  if (text.length > maxLength) {
    throw new LoaderError(
      'cmdline',
      `kernel command line is ${text.length} bytes, kernel ${kernelName} accepts at most ${maxLength}: shorten it`,
    );
  }
  const bytes = new Uint8Array(text.length + 1);
  bytes.set(text);
  return bytes;
}
