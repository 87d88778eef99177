import { ExitCode, type StopSignal } from './exit-codes.js';

export interface ProcessHooks {
  /** Registers a function to run however the process ends (terminal restore); returns unregister. */
  registerCleanup(cleanup: () => void): () => void;
  /** Subscribes to a signal; returns the unsubscribe function. */
  onSignal(signal: StopSignal, handler: () => void): () => void;
  /** Runs the cleanups now (each once). */
  runCleanups(): void;
}

/**
 * Makes the process safe to put a terminal in raw mode: the registered cleanups run on every way out
 * (normal exit, process.exit, an uncaught exception or unhandled rejection, which also exit with code 5
 * after printing the error), and a closed stdout (`hype run | head`, a hung-up terminal) does not crash.
 */
export function installProcessHooks(proc: NodeJS.Process = process): ProcessHooks {
  const cleanups = new Set<() => void>();
  const runCleanups = () => {
    for (const cleanup of [...cleanups]) {
      cleanups.delete(cleanup);
      try {
        cleanup();
      } catch {
        // Exiting anyway; one failed restore must not stop the others.
      }
    }
  };
  const fatal = (what: string) => (error: unknown) => {
    runCleanups();
    proc.stderr.write(`hype: internal error: ${what}${(error as Error)?.stack ?? String(error)}\n`);
    proc.exit(ExitCode.internal);
  };
  proc.on('exit', runCleanups);
  proc.on('uncaughtException', fatal(''));
  proc.on('unhandledRejection', fatal('unhandled rejection: '));
  proc.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'EIO') throw error;
  });
  return {
    registerCleanup: (cleanup) => {
      cleanups.add(cleanup);
      return () => cleanups.delete(cleanup);
    },
    onSignal: (signal, handler) => {
      proc.on(signal, handler);
      return () => proc.off(signal, handler);
    },
    runCleanups,
  };
}
