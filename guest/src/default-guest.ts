import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_BUILD_DRIVER_VERSION, AGENT_CFLAGS, agentInputFiles, ensureAgent } from './agent.js';
import { hypeCacheDir, KERNEL_BUILD_DRIVER_VERSION } from './cache.js';
import { sha256Hex } from './hash.js';
import { buildInitrd, DEFAULT_BUSYBOX } from './initrd.js';
import { fingerprint, memoized, recall, remember } from './memo.js';
import { guestPath } from './paths.js';
import { ensureKernel, kernelInputFiles, type KernelArtifacts, type KernelBuildOptions } from './kernel.js';

export interface DefaultGuestFiles {
  /** The ELF vmlinux: loaded as is (the bzImage's payload would be inflated on every boot). */
  kernel: string;
  /** hype's initrd (busybox, guest/rootfs, the guest agent), shell mode. */
  initrd: string;
  /** Every kernel artifact (bzImage too). */
  artifacts: KernelArtifacts;
}

export interface DefaultGuestOptions extends KernelBuildOptions {
  /** One line per step (and one per artifact found in the cache when `reportCached`). */
  progress?: (line: string) => void;
  reportCached?: boolean;
}

/**
 * hype's default guest, ready to boot: the kernel built and cached by ensureKernel() (minutes, once per
 * config), and the initrd, rebuilt in memory on each call (well under a second) and stored under a name
 * derived from its contents, so edits to guest/rootfs take effect at once and unchanged contents are
 * written once.
 *
 * A start with both in the cache is the usual case: then every file the answer was derived from (config
 * fragment, kernel source and dpkg's database, the agent's source and tool chain, busybox, guest/rootfs,
 * this code) and the answer's own files are checked against their identities when that answer was found
 * (recall()), one stat each, instead of resolving the source, hashing the inputs and walking the tree
 * again (a quarter of a second of each start under emulation).
 */
export async function ensureDefaultGuest(options: DefaultGuestOptions = {}): Promise<DefaultGuestFiles> {
  const { progress = () => {}, reportCached = false, ...kernelOptions } = options;
  const cacheDir = kernelOptions.cacheDir ?? hypeCacheDir();
  const key = kernelOptions.source === undefined && kernelOptions.fragmentPath === undefined ? recallKey(cacheDir) : undefined;
  const recalled = key !== undefined ? recall<RecalledGuest>(key, cacheDir) : undefined;
  if (recalled !== undefined) {
    kernelOptions.onProgress?.({ phase: 'cached', message: recalled.kernelMessage });
    if (reportCached) {
      progress(`guest kernel: ${recalled.kernelMessage}`);
      progress(`guest initrd: cached in ${recalled.initrd}`);
    }
    return { kernel: recalled.artifacts.vmlinux, initrd: recalled.initrd, artifacts: recalled.artifacts };
  }
  // The inputs' identities before anything is built: a file changed meanwhile makes the next recall miss.
  const listed = key !== undefined ? guestInputFiles() : undefined;
  const before = listed !== undefined ? fingerprint(listed.all) : undefined;
  let kernelMessage: string | undefined;
  const artifacts = await ensureKernel({
    ...kernelOptions,
    onProgress: (p) => {
      kernelOptions.onProgress?.(p);
      if (p.phase === 'cached') kernelMessage = p.message;
      if (p.phase !== 'cached' || reportCached) progress(`guest kernel: ${p.message}`);
    },
  });
  // The initrd's inputs as listed above when they were (the list walks guest/rootfs and checks the agent's build).
  const initrd = ensureInitrd(cacheDir, progress, reportCached, listed?.initrd ?? initrdInputs());
  if (key !== undefined && listed !== undefined && before !== undefined && kernelMessage !== undefined && initrd.cached) {
    const outputs = [artifacts.vmlinux, join(artifacts.dir, 'build.json'), initrd.path];
    const after = fingerprint(outputs);
    const value: RecalledGuest = { kernelMessage, initrd: initrd.path, artifacts };
    if (after !== undefined) remember(key, [...listed.all, ...outputs], `${before}|${after}`, value, cacheDir);
  }
  return { kernel: artifacts.vmlinux, initrd: initrd.path, artifacts };
}

interface RecalledGuest {
  kernelMessage: string;
  initrd: string;
  artifacts: KernelArtifacts;
}

/**
 * What else decides the answer: where the cache is, how tools and the source are found, the build
 * drivers; and where this code is (two installs sharing a cache, e.g. the CLI's bundle and the package
 * itself, record different code files and would otherwise replace each other's entry on every start).
 */
function recallKey(cacheDir: string): string {
  const env = { PATH: process.env.PATH ?? '', HYPE_LINUX_SOURCE: process.env.HYPE_LINUX_SOURCE ?? '' };
  const drivers = { kernel: KERNEL_BUILD_DRIVER_VERSION, agent: AGENT_BUILD_DRIVER_VERSION, cflags: AGENT_CFLAGS };
  return `default guest ${JSON.stringify({ cacheDir, code: codeDir(), env, drivers })}`;
}

function codeDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

/**
 * Every file the default guest is derived from (see initrdInputs and the kernel's and agent's inputs) and
 * the code that builds it: this file's directory and the JavaScript in it (in a bundle, the bundle);
 * and the initrd's part of them on its own. Undefined when they cannot be listed (no kernel source): then
 * the slow path says what is missing.
 */
function guestInputFiles(): { all: string[]; initrd: string[] } | undefined {
  try {
    const code = codeDir();
    const codeFiles = readdirSync(code).filter((name) => /\.[cm]?js$/.test(name)).map((name) => join(code, name));
    const initrd = initrdInputs();
    return { all: [...new Set([...kernelInputFiles(), ...agentInputFiles(), ...initrd, code, ...codeFiles])], initrd };
  } catch {
    return undefined;
  }
}

/**
 * What the default initrd is made of: busybox, the agent binary, every file and directory of
 * guest/rootfs, and the builder's own code. While none of them changed, the last initrd is reused
 * without reading them (under emulation, reading and packing them took seconds of every start).
 */
function initrdInputs(): string[] {
  const files = [DEFAULT_BUSYBOX, ensureAgent().path, fileURLToPath(import.meta.url)];
  const walk = (dir: string) => {
    files.push(dir);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(guestPath('rootfs'));
  return files;
}

function ensureInitrd(cacheDir: string, progress: (line: string) => void, reportCached: boolean, inputs: string[]): { path: string; cached: boolean } {
  let built = false;
  const path = memoized(
    `default initrd in ${cacheDir}`,
    inputs,
    () => {
      built = true;
      return buildInitrdFile(cacheDir, progress, reportCached);
    },
    cacheDir,
    existsSync,
  );
  if (!built && reportCached) progress(`guest initrd: cached in ${path}`);
  return { path, cached: !built };
}

function buildInitrdFile(cacheDir: string, progress: (line: string) => void, reportCached: boolean): string {
  const archive = buildInitrd();
  const hash = sha256Hex([archive], 16);
  const path = join(cacheDir, `initrd-${hash}.cpio`);
  if (existsSync(path)) {
    if (reportCached) progress(`guest initrd: cached in ${path}`);
    return path;
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, archive);
  renameSync(tmp, path);
  progress(`guest initrd: built ${path} (${Math.round(archive.length / 1024)} KiB)`);
  return path;
}
