#!/usr/bin/env node
// Builds the native addon when no usable binary exists, offline.
//
//   install   (npm/pnpm "install" hook): node-gyp-build: keep a loadable prebuild or build/Release,
//             otherwise compile from source.
//   build     (turbo "build"): same, and also recompile when build/Release is older than the C++
//             sources (so `pnpm build` after editing native/ never runs a stale addon).
//   prebuild  prebuildify --napi --strip -> prebuilds/linux-x64/ (script "build:prebuild": a script
//             named "prebuild" would run before every "build", pnpm runs pre-scripts).
//
// node-gyp downloads Node's headers unless told where they are; there is no network here, so point it at
// the headers that ship with this Node (`<prefix>/include/node`, e.g. /usr/include/node) when present.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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

function buildIsStale() {
  const addon = join(packageRoot, 'build', 'Release', 'kvm_sys.node');
  return existsSync(addon) && statSync(addon).mtimeMs < newestSourceTime();
}

if (process.platform !== 'linux') {
  console.error('@hype/kvm-sys: KVM exists only on Linux; skipping the native build');
  process.exit(0);
}

switch (mode) {
  case 'install':
    run('node-gyp-build', []);
    break;
  case 'build':
    if (buildIsStale()) run('node-gyp', ['rebuild']);
    else run('node-gyp-build', []);
    break;
  case 'prebuild':
    run('prebuildify', ['--napi', '--strip']);
    break;
  default:
    console.error(`@hype/kvm-sys: unknown mode ${mode} (expected install, build or prebuild)`);
    process.exit(1);
}
