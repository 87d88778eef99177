#!/usr/bin/env node
/**
 * The `hype` executable: runCli with the real process, terminal, file system, loader, guest builder and
 * @hype/vm. Everything that decides anything lives in run-cli.ts; this file only wires and exits.
 */
import { totalmem } from 'node:os';
import { loaderCheckBoot } from './boot-check.js';
import { ExitCode } from './exit-codes.js';
import { runCli } from './run-cli.js';

/** Terminal restores etc. to run however the process ends. */
const cleanups = new Set<() => void>();
function runCleanups(): void {
  for (const cleanup of [...cleanups]) {
    cleanups.delete(cleanup);
    try {
      cleanup();
    } catch {
      // Exiting anyway; one failed restore must not stop the others.
    }
  }
}

process.on('exit', runCleanups);
process.on('uncaughtException', (error) => {
  runCleanups();
  process.stderr.write(`hype: internal error: ${error?.stack ?? String(error)}\n`);
  process.exit(ExitCode.internal);
});
process.on('unhandledRejection', (reason) => {
  runCleanups();
  process.stderr.write(`hype: internal error: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}\n`);
  process.exit(ExitCode.internal);
});
// `hype run | head`: a closed stdout must not crash us with EPIPE; the VM keeps its own course.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE' && error.code !== 'EIO') throw error;
});

const code = await runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  // Loaded on first use: @hype/vm pulls in the native KVM addon and @hype/guest the build driver, which
  // --help, --version and the input checks do not need (and must not fail on).
  createVm: async (config, options) => (await import('./vm-adapter.js')).defaultCreateVm(config, options),
  guest: {
    ensure: async (progress, reportCached) => (await import('./default-guest.js')).packagedDefaultGuest.ensure(progress, reportCached),
  },
  checkBoot: loaderCheckBoot,
  onSignal: (signal, handler) => {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  registerCleanup: (cleanup) => {
    cleanups.add(cleanup);
    return () => cleanups.delete(cleanup);
  },
  totalMemBytes: totalmem(),
});
runCleanups();
// Exit at once: stdin, vCPU threads or timers must not keep a finished hype alive.
process.exit(code);
