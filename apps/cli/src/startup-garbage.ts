import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * One full garbage collection, for when the VM has started: what start-up leaves behind (the kernel image
 * the checks read, a bzImage's unpacked payload: 16-20 MiB for the default guest) is dead by then, but the
 * allocation of guest RAM made V8 promote it to its old space, and nothing else makes an idle VMM run a
 * full collection: it stayed resident for the VM's life (issue 15, the VMM's memory). Node offers `gc` only
 * under --expose-gc, which cannot be on the `hype` command line for every way it is started; the flag is
 * set for the moment it takes to create a context with `gc` in it, and cleared again. Costs a few ms of the
 * JS thread while the guest boots on its own threads. Returns whether a collection ran.
 */
export function collectStartupGarbage(): boolean {
  // Started with --expose-gc (a test runner, a program embedding runCli): use it, and leave the flag on.
  let gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') {
    setFlagsFromString('--expose-gc');
    try {
      gc = runInNewContext('typeof gc === "function" ? gc : undefined') as (() => void) | undefined;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  gc?.();
  return gc !== undefined;
}
