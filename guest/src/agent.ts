/**
 * hype-agent, the guest agent (guest/agent/hype-agent.c, protocol in guest/agent/PROTOCOL.md): compiled
 * with the host's gcc into a static x86-64 binary and cached by content under
 * `<cache>/agent-<key>/hype-agent`, in the same cache directory as the kernel. The initrd carries it as
 * /usr/sbin/hype-agent. The tests of @hype/guest-agent compile it with `compileAgent()` and run it on the
 * host (`--unix PATH`).
 */
import { execFileSync, spawnSync } from './child-process.js';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hypeCacheDir } from './cache.js';
import { sha256Hex } from './hash.js';
import { memoized } from './memo.js';
import { checkStaticX8664Elf } from './elf.js';
import { guestPath } from './paths.js';

export const AGENT_SOURCE_PATH = guestPath('agent', 'hype-agent.c');
/** Where the initrd carries the agent (mode 0755); /init starts it when /dev/vsock exists. */
export const AGENT_INITRD_PATH = 'usr/sbin/hype-agent';
/** The compiler flags: static (no runtime in the guest), small, stripped, every warning an error. */
export const AGENT_CFLAGS: readonly string[] = ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror'];
/** Bumped when the way the agent is built changes (part of the cache key). */
export const AGENT_BUILD_DRIVER_VERSION = 1;

const GCC_HINT = 'apt-get install gcc libc6-dev (the guest agent is compiled on the host; buildInitrd({ agent: false }) leaves it out)';

export interface CompileAgentOptions {
  /** The output file. */
  out: string;
  /** Default: guest/agent/hype-agent.c. */
  source?: string;
  /** The C compiler. Default: gcc. */
  cc?: string;
}

/** Compiles the agent into `out` (synchronously, about a second). Throws with the compiler's output on failure. */
export function compileAgent(options: CompileAgentOptions): void {
  const source = options.source ?? AGENT_SOURCE_PATH;
  const cc = options.cc ?? 'gcc';
  const result = spawnSync(cc, [...AGENT_CFLAGS, '-o', options.out, source], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${cc} not found: ${GCC_HINT}` : `${cc} could not start: ${result.error.message}`);
  }
  if (result.status !== 0) {
    const output = `${result.stdout}${result.stderr}`.trim();
    const hint = /cannot find -lc|crt1\.o|stdio\.h/.test(output) ? ` (${GCC_HINT})` : '';
    throw new Error(`compiling ${source} failed (${cc} ${result.signal ?? `exit ${result.status}`})${hint}:\n${output}`);
  }
  checkStaticX8664Elf(readFileSync(options.out), options.out, `${cc} -static did not link statically (${GCC_HINT})`);
}

export interface AgentBuildOptions {
  /** Default: `$HYPE_CACHE_DIR`, else `$XDG_CACHE_HOME/hype`, else ~/.cache/hype ({@link hypeCacheDir}). */
  cacheDir?: string;
  source?: string;
  cc?: string;
}

export interface AgentArtifact {
  /** `<cache>/agent-<key>/hype-agent` */
  path: string;
  key: string;
  /** True when it came from the cache without compiling. */
  cached: boolean;
}

export interface AgentCacheKeyInputs {
  /** The C source. */
  source: Uint8Array | string;
  /** What identifies the compiler and C library (`gcc --version`'s first line, libc.a's size and mtime). */
  toolchain: string;
  flags?: readonly string[];
  driverVersion?: number;
}

/** 16 hex digits of SHA-256 over the source, the tool chain, the flags and the driver version. */
export function agentCacheKey(inputs: AgentCacheKeyInputs): string {
  const settings = JSON.stringify({ toolchain: inputs.toolchain, flags: inputs.flags ?? AGENT_CFLAGS, driver: inputs.driverVersion ?? AGENT_BUILD_DRIVER_VERSION });
  return sha256Hex([settings, '\0', inputs.source], 16);
}

/** The compiler's version line and the static C library's size and mtime (an update of either rebuilds the agent). */
export function agentToolchain(cc = 'gcc'): string {
  const { version, libc } = toolchainFacts(cc);
  let libcId = 'no libc.a';
  try {
    const st = statSync(libc);
    libcId = `${st.size}:${Math.floor(st.mtimeMs)}`;
  } catch {
    // gcc prints the bare name when it has no libc.a; the compile step then says what to install.
  }
  return `${version}; libc.a ${libcId}`;
}

/** The files the agent's cache key is made from: its source, the compiler's binary and the static C library. */
export function agentInputFiles(cc = 'gcc'): string[] {
  const { binary, libc } = toolchainFacts(cc);
  return [AGENT_SOURCE_PATH, ...(binary !== undefined ? [binary] : []), libc];
}

function toolchainFacts(cc: string): { binary: string | undefined; version: string; libc: string } {
  const ask = () => {
    try {
      const version = execFileSync(cc, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
      const libc = execFileSync(cc, ['-print-file-name=libc.a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      return { version, libc };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new Error(code === 'ENOENT' ? `${cc} not found: ${GCC_HINT}` : `${cc} --version failed: ${(error as Error).message}`);
    }
  };
  // Two compiler runs per `hype run` otherwise; the answers change only with the compiler binary.
  const found = findOnPath(cc);
  const binary = found === undefined ? undefined : realpathSync(found);
  return { binary, ...(binary === undefined ? ask() : memoized(`toolchain ${cc}`, [binary], ask)) };
}

/** The cached agent for the current source and tool chain, compiling it first if needed. */
export function ensureAgent(options: AgentBuildOptions = {}): AgentArtifact {
  const source = options.source ?? AGENT_SOURCE_PATH;
  const cc = options.cc ?? 'gcc';
  const cacheDir = options.cacheDir ?? hypeCacheDir();
  const key = agentCacheKey({ source: readFileSync(source), toolchain: agentToolchain(cc) });
  const dir = join(cacheDir, `agent-${key}`);
  const path = join(dir, 'hype-agent');
  if (existsSync(path)) return { path, key, cached: true };
  const work = join(cacheDir, 'tmp', `agent-${key}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    compileAgent({ source, cc, out: join(work, 'hype-agent') });
    // An entry without its binary (deleted by hand) would make the rename fail: replace it.
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(work, dir);
    } catch (error) {
      // Another process stored the same key first: use theirs.
      if (!existsSync(path)) throw error;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { path, key, cached: false };
}

/** The file `command` runs as (a path as is; else the first executable of that name on PATH). */
function findOnPath(command: string): string | undefined {
  if (command.includes('/')) return existsSync(command) ? command : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
