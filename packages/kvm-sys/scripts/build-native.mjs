#!/usr/bin/env node
// Builds the native addon when no usable binary exists, offline.
//
//   install   (npm/pnpm "install" hook): node-gyp-build: keep a loadable prebuild or build/Release,
//             otherwise compile from source.
//   build     (turbo "build"): same, and also recompile when the binary that would load (build/Release
//             or a prebuild) is older than native/ or binding.gyp (so `pnpm build` after editing the
//             C++ never runs a stale addon).
//   prebuild  prebuildify --napi --strip --tag-libc -> prebuilds/linux-x64/@hype+kvm-sys.glibc.node, what
//             the npm package ships (scripts/release.mjs runs it; script "build:prebuild": a script named
//             "prebuild" would run before every "build", pnpm runs pre-scripts).
//
// In an installed package (no native/ edits, no build/) `install` finds the shipped prebuild loadable and
// does nothing else: no compiler is needed on linux-x64 with glibc.
//
// node-gyp downloads Node's headers unless told where they are; there is no network here, so point it at
// the headers that ship with this Node (`<prefix>/include/node`, e.g. /usr/include/node) when present.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2] ?? 'install';

// node-gyp-build runs `node-gyp-build-test` and `node-gyp` through PATH.
const env = { ...process.env, PATH: `${join(packageRoot, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` };
const nodePrefix = resolve(dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(join(nodePrefix, 'include', 'node', 'node_api.h'))) {
  env.npm_config_nodedir = nodePrefix;
}

function run(command, args) {
  const bin = join(packageRoot, 'node_modules', '.bin', command);
  const result = spawnSync(existsSync(bin) ? bin : command, args, { cwd: packageRoot, env, stdio: 'inherit' });
  if (result.error) {
    console.error(`@hype/kvm-sys: cannot run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function newestSourceTime() {
  let newest = statSync(join(packageRoot, 'binding.gyp')).mtimeMs;
  for (const name of readdirSync(join(packageRoot, 'native'))) {
    newest = Math.max(newest, statSync(join(packageRoot, 'native', name)).mtimeMs);
  }
  return newest;
}

// The binary node-gyp-build would load (build/Release first, then prebuilds/), or undefined.
function loadableBinary() {
  const require = createRequire(import.meta.url);
  try {
    return require('node-gyp-build').path(packageRoot);
  } catch {
    return undefined;
  }
}

// In a source checkout a binary older than native/ or binding.gyp (a build/Release from before an edit,
// or a prebuild made earlier) must not be what loads.
function binaryIsStale() {
  const binary = loadableBinary();
  return binary !== undefined && statSync(binary).mtimeMs < newestSourceTime();
}

if (process.platform !== 'linux') {
  console.error('@hype/kvm-sys: KVM exists only on Linux; skipping the native build');
  process.exit(0);
}

// install: a binary that loads (the shipped prebuild, or an earlier build) is all that is needed; no lock,
// no node-gyp. npm_config_build_from_source=true (`npm install --build-from-source`) compiles anyway.
if (mode === 'install' && process.env.npm_config_build_from_source !== 'true') {
  const binary = loadableBinary();
  if (binary !== undefined) {
    try {
      createRequire(import.meta.url)(binary);
      process.exit(0);
    } catch {
      // Found but does not load here (another libc, a broken file): build from source below.
    }
  }
}

// Several `pnpm build`s can run at once in one checkout (turbo, other terminals); two node-gyp runs in one
// build/ directory break each other. Hold a lock directory (with our pid) for the duration.
const lock = join(packageRoot, '.native-build.lock');
function acquireLock() {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      process.on('exit', () => rmSync(lock, { recursive: true, force: true }));
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
    } catch {
      // No pid file (yet): the owner is unknown, and the lock is left alone.
    }
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch {
      // No such process (or no pid): not alive.
    }
    if (!alive && Number.isInteger(owner)) rmSync(lock, { recursive: true, force: true });
    if (Date.now() > deadline) {
      console.error(`@hype/kvm-sys: ${lock} is held by process ${owner}; remove it if no build is running`);
      process.exit(1);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
}
acquireLock();

switch (mode) {
  case 'install':
    run('node-gyp-build', []);
    break;
  case 'build':
    if (binaryIsStale()) run('node-gyp', ['rebuild']);
    else run('node-gyp-build', []);
    break;
  case 'prebuild':
    // --tag-libc names the binary @hype+kvm-sys.glibc.node: on musl node-gyp-build skips it and the install
    // compiles instead of loading a binary that cannot link there.
    run('prebuildify', ['--napi', '--strip', '--tag-libc']);
    break;
  default:
    console.error(`@hype/kvm-sys: unknown mode ${mode} (expected install, build or prebuild)`);
    process.exit(1);
}
