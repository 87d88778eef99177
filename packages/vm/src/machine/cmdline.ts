import type { ConsoleKind } from '../config.js';

/**
 * What the VM puts on the kernel command line itself, before the virtio device entries, the host
 * quirks and the user's own text: the console, reboot through the i8042 (so `reboot` and a panic end
 * the VM), and a single 8250 port so the kernel does not probe absent ones.
 */
export function baseCmdline(console: ConsoleKind): string {
  const consoleArg = console === 'hvc' ? 'console=hvc0' : 'console=ttyS0';
  return [consoleArg, 'reboot=k', 'panic=-1', '8250.nr_uarts=1'].join(' ');
}

/** Joins command-line parts, skipping empty ones. */
export function joinCmdline(...parts: (string | undefined)[]): string {
  return parts
    .map((p) => p?.trim())
    .filter((p): p is string => !!p)
    .join(' ');
}
