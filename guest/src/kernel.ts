/**
 * Builds hype's guest kernel from Debian's linux-source tarball (found by version: see linux-source.ts)
 * with our config fragment (its `#if linux` blocks resolved for the source's version) on top of
 * `tinyconfig`, verifies the fragment survived `olddefconfig`, and
 * caches bzImage, vmlinux and the final config under `<cache>/kernel-<key>/` (moved into place with one
 * rename, so a reader never sees a half-written entry).
 */
import { spawn, execFileSync } from './child-process.js';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, createWriteStream, openSync, closeSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { hypeCacheDir, kernelCacheEntry, kernelCacheKey, KERNEL_BUILD_DRIVER_VERSION } from './cache.js';
import { parseKconfig, resolveKconfigFragment, verifyKconfig, type KconfigValue } from './kconfig.js';
import { dpkgQuery, findLinuxSource, isTestedLinuxVersion, LINUX_SOURCE_DIR, LINUX_SOURCE_HINT, linuxVersionFromMakefile, linuxVersionFromPath, linuxVersionMatches, TESTED_LINUX_VERSIONS, type DpkgQuery, type LinuxSourceChoice } from './linux-source.js';
import { DPKG_STATUS_FILE } from './memo.js';
import { guestPath } from './paths.js';

export const KERNEL_FRAGMENT_PATH = guestPath('kernel', 'hype.config');
const SETUP_HINT = LINUX_SOURCE_HINT;

export type KernelBuildPhase = 'cached' | 'wait' | 'extract' | 'configure' | 'verify' | 'compile' | 'store' | 'done';

export interface KernelBuildProgress {
  phase: KernelBuildPhase;
  message: string;
  /** Compile phase: number of objects compiled/assembled so far. */
  compiled?: number;
}

export interface KernelBuildOptions {
  onProgress?: (progress: KernelBuildProgress) => void;
  /**
   * The Linux source tarball. Default: `$HYPE_LINUX_SOURCE`, else the one the `linux-source` package
   * installed, else the newest /usr/src/linux-source-*.tar.xz ({@link findLinuxSource}).
   */
  source?: string;
  /**
   * The config fragment. Default: guest/kernel/hype.config. Its `#if linux < V` / `#else` / `#endif`
   * blocks are resolved for the version in the tarball's name ({@link resolveKconfigFragment}).
   */
  fragmentPath?: string;
  /** Default: `$HYPE_CACHE_DIR`, else `$XDG_CACHE_HOME/hype`, else ~/.cache/hype ({@link hypeCacheDir}). */
  cacheDir?: string;
  /** Parallel make jobs. Default: the number of CPUs. */
  jobs?: number;
  /** Keep the extracted and compiled tree (under <cache>/tmp/) after a successful build. */
  keepBuildTree?: boolean;
  /** Emit a compile progress event every this many objects (default 100). */
  progressEvery?: number;
}

export interface KernelArtifacts {
  /** `<cache>/kernel-<key>` */
  dir: string;
  key: string;
  bzImage: string;
  vmlinux: string;
  config: string;
  /** True when the artifacts came from the cache without building. */
  cached: boolean;
}

export interface KernelBuildInfo {
  key: string;
  driverVersion: number;
  sourceVersion: string;
  source: string;
  kernelRelease: string;
  fragment: Record<string, KconfigValue>;
  builtAt: string;
  buildSeconds: number;
  jobs: number;
}

interface ResolvedInputs {
  source: string;
  /** Why this source: the `source` option, HYPE_LINUX_SOURCE, the linux-source package's, the newest. */
  sourceReason: string;
  /** The version from the tarball's name (`6.1`), or `unknown`. */
  linuxVersion: string;
  sourceVersion: string;
  fragmentPath: string;
  /** The fragment resolved for `linuxVersion`: what merge_config.sh gets. */
  fragmentText: string;
  /** The fragment has `#if linux` blocks (so the tree's Makefile must agree with `linuxVersion`). */
  versionDependent: boolean;
  fragment: Map<string, KconfigValue>;
  cacheDir: string;
  key: string;
  dir: string;
}

function resolveSource(options: KernelBuildOptions): LinuxSourceChoice {
  const choice: LinuxSourceChoice =
    options.source !== undefined
      ? { path: options.source, version: linuxVersionFromPath(options.source), reason: 'the source option' }
      : findLinuxSource();
  if (!existsSync(choice.path)) throw new Error(`kernel source not found at ${choice.path} (${choice.reason}): ${SETUP_HINT}`);
  return choice;
}

/**
 * The files the kernel's cache key is derived from: the fragment, the source tarball, dpkg's database
 * (which names the linux-source package's tarball and its version) and the directories a tarball is
 * looked for in (one added or removed there changes the choice). Those that exist now.
 */
export function kernelInputFiles(options: Pick<KernelBuildOptions, 'source' | 'fragmentPath'> = {}): string[] {
  const choice = resolveSource(options);
  const places = existsSync(LINUX_SOURCE_DIR)
    ? [LINUX_SOURCE_DIR, ...readdirSync(LINUX_SOURCE_DIR).filter((name) => name.startsWith('linux-source-')).map((name) => join(LINUX_SOURCE_DIR, name))]
    : [];
  return [options.fragmentPath ?? KERNEL_FRAGMENT_PATH, choice.path, ...places, ...(existsSync(DPKG_STATUS_FILE) ? [DPKG_STATUS_FILE] : [])];
}

/** The Debian package version owning the tarball, else a size+mtime fingerprint of the file. */
export function linuxSourceVersion(source: string, query: DpkgQuery = dpkgQuery): string {
  // The package a linux-source-<v>.tar.* comes from is linux-source-<v>; its file list (-L, one small
  // file) confirms it. `dpkg-query -S` would find any owner, but it reads every package's file list:
  // 0.2 s here, 6 s under emulation, on every start.
  const version = linuxVersionFromPath(source);
  const pkg = `linux-source-${version}`;
  const owned = version !== 'unknown' && (query(['-L', pkg]) ?? '').split('\n').some((line) => line.trim() === source);
  const pkgVersion = owned ? query(['-W', '-f=${Version}', pkg])?.trim() : undefined;
  if (pkgVersion) return `${pkg}=${pkgVersion}`;
  // Not from a Debian package (or no dpkg): the file's fingerprint instead.
  const st = statSync(source);
  return `file:${st.size}:${Math.floor(st.mtimeMs)}`;
}

function resolveInputs(options: KernelBuildOptions): ResolvedInputs {
  const choice = resolveSource(options);
  const source = choice.path;
  const fragmentPath = options.fragmentPath ?? KERNEL_FRAGMENT_PATH;
  // The key holds the options resolved for this version: lines of blocks for other versions do not change it.
  const resolved = resolveKconfigFragment(readFileSync(fragmentPath, 'utf8'), choice.version, fragmentPath);
  const fragment = parseKconfig(resolved.text, fragmentPath);
  const sourceVersion = linuxSourceVersion(source);
  const cacheDir = options.cacheDir ?? hypeCacheDir();
  const key = kernelCacheKey({ fragment, sourceVersion });
  return {
    source,
    sourceReason: choice.reason,
    linuxVersion: choice.version,
    sourceVersion,
    fragmentPath,
    fragmentText: resolved.text,
    versionDependent: resolved.versionDependent,
    fragment,
    cacheDir,
    key,
    dir: kernelCacheEntry(cacheDir, key),
  };
}

function artifactsIn(dir: string, key: string, cached: boolean): KernelArtifacts {
  return { dir, key, bzImage: join(dir, 'bzImage'), vmlinux: join(dir, 'vmlinux'), config: join(dir, 'config'), cached };
}

function isComplete(dir: string): boolean {
  return ['bzImage', 'vmlinux', 'config', 'build.json'].every((f) => existsSync(join(dir, f)));
}

/** The cache entry for the current fragment and source, if it has been built. */
export function findCachedKernel(options: Pick<KernelBuildOptions, 'source' | 'fragmentPath' | 'cacheDir'> = {}): KernelArtifacts | undefined {
  const inputs = resolveInputs(options);
  return isComplete(inputs.dir) ? artifactsIn(inputs.dir, inputs.key, true) : undefined;
}

/** Returns the cached kernel for the current fragment and source, building it first if needed. */
export async function ensureKernel(options: KernelBuildOptions = {}): Promise<KernelArtifacts> {
  return buildKernel(options);
}

/**
 * Builds the kernel unless the cache already holds this key (then returns at once with
 * `cached: true`). Concurrent callers for the same key wait for one build through a lock file.
 */
export async function buildKernel(options: KernelBuildOptions = {}): Promise<KernelArtifacts> {
  const report = options.onProgress ?? (() => {});
  const inputs = resolveInputs(options);
  if (isComplete(inputs.dir)) {
    report({ phase: 'cached', message: `kernel ${inputs.key} (${inputs.sourceVersion}) cached in ${inputs.dir}` });
    return artifactsIn(inputs.dir, inputs.key, true);
  }
  mkdirSync(inputs.cacheDir, { recursive: true });
  const release = await acquireLock(join(inputs.cacheDir, `kernel-${inputs.key}.lock`), report);
  try {
    if (isComplete(inputs.dir)) {
      report({ phase: 'cached', message: `kernel ${inputs.key} was built by another process: ${inputs.dir}` });
      return artifactsIn(inputs.dir, inputs.key, true);
    }
    return await runBuild(inputs, options, report);
  } finally {
    release();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function acquireLock(lockPath: string, report: (p: KernelBuildProgress) => void): Promise<() => void> {
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = NaN;
    try {
      owner = parseInt(readFileSync(lockPath, 'utf8'), 10);
    } catch {
      continue; // removed between our open and read: retry at once
    }
    if (!Number.isInteger(owner) || !processAlive(owner)) {
      rmSync(lockPath, { force: true }); // stale: its builder died
      continue;
    }
    if (!announced) {
      report({ phase: 'wait', message: `waiting for process ${owner}, which is building this kernel (${lockPath})` });
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** Runs a command, logging its output; rejects with the command, status and last lines. */
function run(
  command: string,
  args: string[],
  cwd: string,
  log: NodeJS.WritableStream,
  onLine?: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  return new Promise((resolve, reject) => {
    log.write(`$ ${command} ${args.join(' ')}\n`);
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let partial = '';
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 40) tail.shift();
        onLine?.(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (error) => reject(new Error(`${command} could not start: ${error.message} (${SETUP_HINT})`)));
    child.on('close', (code, signal) => {
      if (partial) tail.push(partial);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}) in ${cwd}; last output:\n${tail.join('\n')}`));
    });
  });
}

const KBUILD_STEP = /^\s+(CC|AS|LD|AR|HOSTCC|HOSTLD|OBJCOPY|GZIP|CPP|ZOFFSET|VOFFSET|MKPIGGY|BUILD|KSYMS|SORTTAB|POLICY)\s+(\S+)/;

async function runBuild(inputs: ResolvedInputs, options: KernelBuildOptions, report: (p: KernelBuildProgress) => void): Promise<KernelArtifacts> {
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)} s`;
  const jobs = options.jobs ?? availableParallelism();
  const every = options.progressEvery ?? 100;
  const tmpRoot = join(inputs.cacheDir, 'tmp');
  const work = join(tmpRoot, `kernel-${inputs.key}-${process.pid}`);
  const tree = join(work, 'linux');
  const out = join(work, 'out');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  mkdirSync(out);
  const logPath = join(work, 'build.log');
  const log = createWriteStream(logPath);
  const env = { ...process.env, ARCH: 'x86_64', KBUILD_BUILD_USER: 'hype', KBUILD_BUILD_HOST: 'hype', LC_ALL: 'C' };
  const fail = (error: unknown): never => {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `kernel build failed: ${message}\n(Linux source: ${inputs.source}, ${inputs.sourceReason}; HYPE_LINUX_SOURCE picks another; ` +
        `full log: ${logPath}; build tree kept in ${work})`,
    );
  };

  try {
    report({ phase: 'extract', message: `extracting ${inputs.source} (${inputs.sourceVersion}; ${inputs.sourceReason}) into ${tree}` });
    if (inputs.linuxVersion !== 'unknown' && !isTestedLinuxVersion(inputs.linuxVersion)) {
      report({
        phase: 'extract',
        message: `Linux ${inputs.linuxVersion} is untested with ${inputs.fragmentPath} (tested: ${TESTED_LINUX_VERSIONS.join(', ')}); every option is verified after olddefconfig`,
      });
    }
    // tar detects the compression itself: Debian ships .tar.xz, Ubuntu .tar.bz2.
    await run('tar', ['-xf', inputs.source, '-C', tree, '--strip-components=1'], work, log);
    if (inputs.versionDependent) {
      // The fragment was resolved for the version in the tarball's name: the tree must be that version.
      const release = linuxVersionFromMakefile(readFileSync(join(tree, 'Makefile'), 'utf8'));
      if (!linuxVersionMatches(inputs.linuxVersion, release)) {
        throw new Error(
          `${inputs.source} is named for Linux ${inputs.linuxVersion} but its Makefile says ${release}; ` +
            `the #if linux blocks of ${inputs.fragmentPath} were resolved for ${inputs.linuxVersion} (rename the tarball)`,
        );
      }
    }

    // merge_config.sh gets the fragment resolved for this version (Kconfig reads #if lines as comments).
    const fragmentCopy = join(work, 'fragment.config');
    writeFileSync(fragmentCopy, inputs.fragmentText);
    const forVersion = inputs.versionDependent ? ` (its blocks for Linux ${inputs.linuxVersion})` : '';
    report({ phase: 'configure', message: `make tinyconfig + ${inputs.fragmentPath}${forVersion} + olddefconfig` });
    await run('make', ['tinyconfig'], tree, log, undefined, env);
    await run(join(tree, 'scripts/kconfig/merge_config.sh'), ['-m', '.config', fragmentCopy], tree, log, undefined, env);
    await run('make', ['olddefconfig'], tree, log, undefined, env);

    const finalConfig = parseKconfig(readFileSync(join(tree, '.config'), 'utf8'), join(tree, '.config'));
    verifyKconfig(inputs.fragment, finalConfig, join(tree, '.config'));
    report({ phase: 'verify', message: `all ${inputs.fragment.size} options of the fragment are in the final .config` });

    report({ phase: 'compile', message: `make -j${jobs} bzImage vmlinux (several minutes)`, compiled: 0 });
    let compiled = 0;
    let lastObject = '';
    await run(
      'make',
      [`-j${jobs}`, 'bzImage', 'vmlinux'],
      tree,
      log,
      (line) => {
        const step = KBUILD_STEP.exec(line);
        if (step) {
          if (step[1] === 'CC' || step[1] === 'AS') {
            compiled++;
            lastObject = step[2];
            if (compiled % every === 0) {
              report({ phase: 'compile', message: `${compiled} objects compiled, ${elapsed()} (${lastObject})`, compiled });
            }
          } else if (step[1] === 'LD' && step[2] === 'vmlinux') {
            report({ phase: 'compile', message: `linking vmlinux after ${compiled} objects, ${elapsed()}`, compiled });
          }
        } else if (/\b(warning|error):/.test(line)) {
          report({ phase: 'compile', message: line.trim(), compiled });
        }
      },
      env,
    );

    const kernelRelease = execFileSync('make', ['-s', 'kernelrelease'], { cwd: tree, env, encoding: 'utf8' }).trim();
    report({ phase: 'store', message: `storing Linux ${kernelRelease} in ${inputs.dir}` });
    copyFileSync(join(tree, 'arch/x86/boot/bzImage'), join(out, 'bzImage'));
    copyFileSync(join(tree, 'vmlinux'), join(out, 'vmlinux'));
    copyFileSync(join(tree, '.config'), join(out, 'config'));
    const info: KernelBuildInfo = {
      key: inputs.key,
      driverVersion: KERNEL_BUILD_DRIVER_VERSION,
      sourceVersion: inputs.sourceVersion,
      source: inputs.source,
      kernelRelease,
      fragment: Object.fromEntries(inputs.fragment),
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 1000),
      jobs,
    };
    writeFileSync(join(out, 'build.json'), `${JSON.stringify(info, null, 2)}\n`);
    // An incomplete entry (a file deleted by hand) would make the rename fail: replace it.
    if (existsSync(inputs.dir) && !isComplete(inputs.dir)) rmSync(inputs.dir, { recursive: true, force: true });
    try {
      renameSync(out, inputs.dir);
    } catch (error) {
      // Someone else completed the same key first (no lock across machines sharing a cache): keep theirs.
      if (!isComplete(inputs.dir)) throw error;
    }
  } catch (error) {
    await new Promise((r) => log.end(r));
    return fail(error);
  }
  await new Promise((r) => log.end(r));
  if (!options.keepBuildTree) {
    rmSync(work, { recursive: true, force: true });
    if (existsSync(tmpRoot) && readdirSync(tmpRoot).length === 0) rmSync(tmpRoot, { recursive: true, force: true });
  }
  report({ phase: 'done', message: `kernel ${inputs.key} built in ${elapsed()}: ${inputs.dir}` });
  return artifactsIn(inputs.dir, inputs.key, false);
}
