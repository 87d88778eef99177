/**
 * What the `hype` executable runs: runCli with the real process, terminal, file system, loader, guest
 * builder and @hype/vm. Everything that decides anything lives in run-cli.ts; this file only wires and
 * exits. bin.ts loads it from one bundled file (dist/main.cjs, with the workspace packages and commander
 * inside) through V8's code cache, see code-cache.ts.
 */
import { totalmem } from 'node:os';
import { loaderCheckBoot } from './boot-check.js';
import { processRig } from './nested.js';
import { installProcessHooks } from './process-hooks.js';
import { runCli } from './run-cli.js';

export interface MainOptions {
  /** Called when a VM has been built and started (bin.ts: the code cache then covers the VM's code). */
  onVmStarted?(): void;
}

/** Runs `hype` with process.argv and exits the process with its exit code. */
export async function main(options: MainOptions = {}): Promise<never> {
  const startedAtMs = performance.now();
  const hooks = installProcessHooks();
  const code = await runCli(process.argv.slice(2), {
    // Node makes each of these streams (and loads the modules behind it) on first use: not before the
    // VM runs, unless something is printed first.
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    env: process.env,
    // Loaded on first use: @hype/vm's adapter opens devices and the native KVM addon, and @hype/guest is
    // the build driver, which --help, --version and the input checks do not need (and must not fail on).
    createVm: async (config, vmOptions) => (await import('./vm-adapter.js')).defaultCreateVm(config, vmOptions),
    guest: {
      ensure: async (progress, reportCached) => (await import('./default-guest.js')).packagedDefaultGuest.ensure(progress, reportCached),
    },
    checkBoot: loaderCheckBoot,
    probeKvm: async (path) => (await import('./vm-adapter.js')).probeKvm(path),
    nested: processRig(process.argv[1]!, process.env),
    onSignal: hooks.onSignal,
    registerCleanup: hooks.registerCleanup,
    totalMemBytes: totalmem(),
    startedAtMs,
    ...(options.onVmStarted ? { onVmStarted: options.onVmStarted } : {}),
  });
  hooks.runCleanups();
  // Exit at once: stdin, vCPU threads or timers must not keep a finished hype alive.
  process.exit(code);
}
