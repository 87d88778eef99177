#!/usr/bin/env node
/**
 * The `hype` executable: runCli with the real process, terminal, file system, loader, guest builder and
 * @hype/vm. Everything that decides anything lives in run-cli.ts; this file only wires and exits.
 */
import { totalmem } from 'node:os';
import { loaderCheckBoot } from './boot-check.js';
import { processRig } from './nested.js';
import { installProcessHooks } from './process-hooks.js';
import { runCli } from './run-cli.js';

const hooks = installProcessHooks();
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
  probeKvm: async (path) => (await import('./vm-adapter.js')).probeKvm(path),
  nested: processRig(process.argv[1]!, process.env),
  onSignal: hooks.onSignal,
  registerCleanup: hooks.registerCleanup,
  totalMemBytes: totalmem(),
});
hooks.runCleanups();
// Exit at once: stdin, vCPU threads or timers must not keep a finished hype alive.
process.exit(code);
