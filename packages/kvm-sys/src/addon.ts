// Loads the native addon (as node-gyp-build does: build/Release first, then prebuilds/<platform>-<arch>/) and
// describes what it exports. Everything returning a number returns -errno on failure unless noted.
// Every function checks all of its arguments before it acts and throws a TypeError (wrong type) or
// RangeError (wrong value) "<function>: <argument> must be ..." otherwise: fds are integers from 0 to
// 2^31-1, 64-bit values are bigints or non-negative safe integers, buffers are TypedArrays or DataViews
// of a (non-shared, attached) ArrayBuffer.
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';

/** An addon-owned mmap, exposed as one external ArrayBuffer. */
export interface NativeMapping {
  /** The whole mapping; `undefined` once closed (the ArrayBuffer is then detached: views read as empty). */
  readonly buffer: ArrayBuffer | undefined;
  readonly size: number;
  readonly closed: boolean;
  /** Deletes the memslot it backs (if any), detaches the buffer and unmaps. Idempotent. Throws while a
   * running vCPU thread uses it. */
  close(): void;
}

export interface NativeMappingConstructor {
  /** Anonymous private memory (MAP_NORESERVE, MADV_DONTFORK); size a page multiple, at most 4 GiB. */
  new (size: number | bigint): NativeMapping;
  /** MAP_SHARED of `fd` at offset 0 (a vCPU's kvm_run area). */
  new (size: number | bigint, fd: number): NativeMapping;
}

export interface NativeFdWatcher {
  readonly closed: boolean;
  close(): void;
  ref(): void;
  unref(): void;
}

export interface NativeFdWatcherConstructor {
  /** Watches `fd` for readability on the event loop. With `drainEventfd` the watcher reads the eventfd
   * counter and passes it (bigint); otherwise it passes the poll events (number). A negative number is
   * -errno. */
  new (fd: number, drainEventfd: boolean, callback: (result: bigint | number) => void): NativeFdWatcher;
}

export interface VcpuThreadOptions {
  /** Busy-wait this long for resume() before sleeping on a condition variable (0 = sleep at once; at
   * most 1 s). */
  spinNs?: number;
  /** Replace KVM_RUN by an in-process stand-in (tests of the threading without /dev/kvm); vcpuFd may then
   * be -1. */
  simulate?: boolean;
  /** The port-I/O read mirror (an anonymous Mapping of at least `pioReadMirrorLayout.size` bytes, laid
   * out as `pioReadMirrorLayout` says; any number of threads may share one): a 1-byte, non-string IN from
   * a port it holds a valid entry for is answered on the vCPU thread, without calling onExit. The mapping
   * cannot be closed while the thread runs. */
  pioReadMirror?: NativeMapping;
}

export interface NativeVcpuThread {
  readonly running: boolean;
  readonly exitPending: boolean;
  /** Spawns the thread (throws if it is already running). */
  start(): void;
  /** Completes the exit last delivered to onExit; the thread re-enters KVM_RUN. */
  resume(): void;
  /** resume(), then waits up to `budgetNs` (at most 1 ms; the first `spinNs`, default all of it,
   * busy) for the thread's next exit. True: that exit is now pending, exactly as if onExit had been called
   * (onExit is not called for it); complete it with resume() or resumeAndPoll(). False: no exit came in
   * time, or polling was pointless (budget 0, stopping, an event of any vCPU thread queued for
   * onExit/onStop); the next exit goes to onExit. Blocks the JS thread for at most `budgetNs`. */
  resumeAndPoll(budgetNs: number, spinNs?: number): boolean;
  /** Exits this object's threads delivered through resumeAndPoll() so far. */
  readonly polledExits: number;
  /** Nanoseconds from the previous exit's completion (resume(), resumeAndPoll(), or start()) to the pending
   * exit: the thread's wake-up if it slept, the guest's run, reads answered from the mirror in between. What
   * a poll for this exit would have waited. */
  readonly resumeToExitNs: number;
  /** Nanoseconds the last exit delivered through onExit took from KVM_RUN's return to onExit (the JS
   * thread's wake-up and its event loop's turn; polled exits do not change it): what a poll saves. */
  readonly deliveryNs: number;
  /** Asks the thread to end (kick signal + immediate_exit); onStop(0) follows. A pending exit is still
   * completed by resume() first. */
  stop(): void;
  /** Ends the thread now (abandoning a pending exit) and waits for it; false if it did not end within
   * ~5 s (it is then detached and its kvm_run page stays mapped). onStop is not called. */
  join(): boolean;
  /** Kicks the thread out of KVM_RUN to record the vCPU's MP state and RFLAGS (probeResult.count goes
   * up); the vCPU re-enters KVM_RUN at once. A kick outside KVM_RUN is only seen at the next one. */
  probe(): void;
  readonly probeResult: { count: number; mpState: number; rflags: number; errno: number };
  /** The thread's kernel task id (0 when not running). */
  readonly tid: number;
  /** IN exits this object's threads answered from the pioReadMirror so far. */
  readonly pioMirrorHits: number;
}

export interface NativeVcpuThreadConstructor {
  new (
    vcpuFd: number,
    run: NativeMapping,
    onExit: () => void,
    onStop: (errno: number) => void,
    options?: VcpuThreadOptions,
  ): NativeVcpuThread;
}

export interface NativeAddon {
  open(path: string): number;
  close(fd: number): number;
  /** Allow-listed KVM ioctls only (throws for others). `arg`: nothing, an integer, or a buffer at least
   * as large as the kernel reads/writes. */
  ioctl(fd: number, request: number, arg?: number | bigint | ArrayBufferView): number;
  /** Registers the whole mapping as memslot `slot`; a mapping backs at most one memslot. */
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhysAddr: number | bigint, mapping: NativeMapping): number;
  /** Deletes the memslot `mapping` backs (no-op if none). */
  removeUserMemoryRegion(mapping: NativeMapping): void;
  /** A connected pair of AF_UNIX stream sockets, close-on-exec and blocking, or -errno. */
  socketpair(): [number, number] | number;
  /** Non-blocking close-on-exec eventfd; `initval` a 32-bit unsigned integer (default 0). */
  eventfd(initval?: number): number;
  /** The counter (bigint, reset to 0), or -errno (number; -EAGAIN when it was 0). */
  eventfdRead(fd: number): bigint | number;
  eventfdWrite(fd: number, value: number | bigint): number;
  /** TUNSETIFF on an open `/dev/net/tun` fd: attaches it to the TUN/TAP interface `name` (created when it
   * does not exist; "" or a `%d` template lets the kernel number it) with `flags` (`ifr_flags`, 16 bits:
   * `TunFlag.TAP | TunFlag.NO_PI`, ...). Returns the interface's name as the kernel set it, or -errno
   * (number). `name`: at most `IFNAMSIZ - 1` (15) bytes of UTF-8, no NUL. The `struct ifreq` is filled by
   * the C compiler from <linux/if.h>. */
  tunSetIff(fd: number, name: string, flags: number): string | number;
  errnoName(errno: number): string;
  errnoMessage(errno: number): string;
  Mapping: NativeMappingConstructor;
  FdWatcher: NativeFdWatcherConstructor;
  VcpuThread: NativeVcpuThreadConstructor;
  /** Benchmark baseline: KVM_RUN in a loop on this thread, every exit a port I/O completed in C; returns
   * the nanoseconds between consecutive exits (`exits` at most 2^24). */
  runPioLoop(vcpuFd: number, run: NativeMapping, exits: number): Float64Array;
  /** sizeof/offsetof from <linux/kvm.h>, same shape as `layouts`. */
  layout(): Record<string, Record<string, number>>;
  /** The KVM_* ioctl macros. */
  ioctls(): Record<string, number>;
  /** The KVM_* constant macros. */
  constants(): Record<string, number>;
  /** The read mirror's layout as the native code uses it (`pioReadMirrorLayout` must equal it). */
  readonly pioReadMirrorLayout: Record<string, number>;
  readonly pageSize: number;
  /** The real-time signal that kicks vCPU threads out of KVM_RUN (SIGRTMIN+6). */
  readonly kickSignal: number;
}

let root: string | undefined;

/**
 * The package directory (holding binding.gyp, build/ and prebuilds/). Found by this package's name rather
 * than from this file's place: this module may be bundled into another file (hype's CLI, which depends on
 * @hype/kvm-sys so that the name resolves from there too). Looked up in the directories require() searches
 * (require.resolve.paths), symlinks resolved; require.resolve() itself only when none has it (this
 * package's own tests in the checkout, where Node resolves the name to the package itself): resolving
 * through the package's "exports" runs Node's ES module resolver, ~80 ms of start-up under emulation.
 */
export function packageRoot(): string {
  if (root !== undefined) return root;
  const require = createRequire(import.meta.url);
  for (const base of require.resolve.paths('@hype/kvm-sys') ?? []) {
    const candidate = join(base, '@hype', 'kvm-sys');
    if (existsSync(join(candidate, 'package.json'))) return (root = realpathSync.native(candidate));
  }
  return (root = dirname(require.resolve('@hype/kvm-sys/package.json')));
}

/**
 * True when `root` is this package inside a checkout of the hype repository (packages/kvm-sys beside the
 * workspace's pnpm-workspace.yaml), false for an installed copy (under node_modules).
 */
export function isSourceCheckout(root: string = packageRoot()): boolean {
  const parts = resolve(root).split(sep);
  return !parts.includes('node_modules') && existsSync(join(root, '..', '..', 'pnpm-workspace.yaml')) && existsSync(join(root, 'native'));
}

/** What to do when the addon does not load, for this repository's developers or for an installed package. */
export function addonLoadHint(root: string = packageRoot()): string {
  if (isSourceCheckout(root)) {
    return 'Run `pnpm install` or `pnpm --filter @hype/kvm-sys build` in the repository (needs a C++ toolchain and python3).';
  }
  return (
    'The package ships a prebuilt addon for Linux x86-64 with glibc; elsewhere (musl, another architecture) it is ' +
    'compiled when the package is installed, which needs python3, make and g++ (Debian: `apt-get install python3 make g++`). ' +
    'Then allow its install script and rebuild: `npm install-scripts approve @hype/kvm-sys && npm rebuild @hype/kvm-sys` ' +
    '(pnpm: `pnpm approve-builds`, then `pnpm rebuild @hype/kvm-sys`).'
  );
}

/**
 * The file node-gyp-build would load in the two usual cases, found without loading node-gyp-build (a tenth
 * of a second of start-up under emulation): a build from source (build/Release), or, with no build at
 * all, the linux-x64 glibc prebuild (node-gyp-build's libc rule: LIBC, else musl where
 * /etc/alpine-release exists). Undefined otherwise: node-gyp-build decides.
 */
export function usualAddonPath(root: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const build = (config: string) => join(root, 'build', config, 'kvm_sys.node');
  if (!env.PREBUILDS_ONLY) {
    if (existsSync(build('Release'))) return build('Release');
    if (existsSync(build('Debug'))) return undefined;
  }
  const libc = env.LIBC || (existsSync('/etc/alpine-release') ? 'musl' : 'glibc');
  if (process.platform !== 'linux' || process.arch !== 'x64' || libc !== 'glibc') return undefined;
  const prebuild = join(root, 'prebuilds', 'linux-x64', '@hype+kvm-sys.glibc.node');
  return existsSync(prebuild) ? prebuild : undefined;
}

/**
 * Loads the addon file at `path` as require() would (Module._extensions['.node'] is process.dlopen), without
 * require()'s resolution of an absolute path, which looks up the package scope of the requiring file
 * (~40 ms of start-up under emulation).
 */
function dlopen(path: string): unknown {
  const module = { exports: {} as unknown };
  process.dlopen(module, path);
  return module.exports;
}

let cached: NativeAddon | undefined;

/** The native addon, loaded on first use. */
export function addon(): NativeAddon {
  if (cached) return cached;
  let dir: string | undefined;
  try {
    dir = packageRoot();
    const usual = usualAddonPath(dir);
    cached = (usual !== undefined ? dlopen(usual) : (createRequire(join(dir, 'package.json'))('node-gyp-build') as (dir: string) => unknown)(dir)) as NativeAddon;
  } catch (error) {
    const hint =
      dir !== undefined
        ? addonLoadHint(dir)
        : `The package @hype/kvm-sys itself was not found from ${import.meta.url}: install it beside the package that uses it (hype's CLI depends on it).`;
    throw new Error(`@hype/kvm-sys: the native addon is not built or does not load (${(error as Error).message.split('\n')[0]}). ${hint}`, {
      cause: error,
    });
  }
  return cached;
}
