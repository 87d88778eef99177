// What the release (scripts/release.mjs) and the pack-and-install test (scripts/test/pack-install.test.ts)
// share: the workspace's public packages, `pnpm pack`, a reader for the tarballs it writes, the checks every
// tarball must pass, and the third-party dependencies packed from the workspace's own node_modules (so an
// install of the tarballs needs no registry).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every workspace package (pnpm-workspace.yaml's `packages:` globs: `dir/*` or `dir`). */
export function workspacePackages(root = REPO_ROOT) {
  const yaml = readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8');
  const globs = [];
  let inPackages = false;
  for (const line of yaml.split('\n')) {
    if (/^\S/.test(line)) inPackages = line.startsWith('packages:');
    else if (inPackages) {
      const match = /^\s+-\s+['"]?([^'"#\s]+)['"]?/.exec(line);
      if (match) globs.push(match[1]);
    }
  }
  const dirs = [];
  for (const glob of globs) {
    if (glob.endsWith('/*')) {
      const parent = join(root, glob.slice(0, -2));
      for (const name of readdirSync(parent).sort()) dirs.push(join(parent, name));
    } else {
      dirs.push(join(root, glob));
    }
  }
  return dirs
    .filter((dir) => existsSync(join(dir, 'package.json')))
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      return { dir, name: manifest.name, version: manifest.version, private: manifest.private === true, manifest };
    });
}

/** The packages a release publishes: every workspace package not marked private. */
export function publicPackages(root = REPO_ROOT) {
  return workspacePackages(root).filter((pkg) => !pkg.private);
}

/** `pnpm pack` of one package into `destination`; returns the tarball's path. */
export function packPackage(dir, destination) {
  const out = execFileSync('pnpm', ['pack', '--json', '--pack-destination', destination], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const start = out.indexOf('{');
  if (start < 0) throw new Error(`pnpm pack in ${dir} printed no JSON:\n${out}`);
  return JSON.parse(out.slice(start)).filename;
}

function field(header, offset, length) {
  const bytes = header.subarray(offset, offset + length);
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? length : end).toString('utf8');
}

function octal(header, offset, length) {
  const text = field(header, offset, length).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/**
 * The members of a .tgz (ustar, with pax and GNU long names): `{ path, type, mode, data }` where `path`
 * drops the leading `package/` and `type` is `file`, `dir`, `symlink` or `other`.
 */
export function readTarball(path) {
  const tar = gunzipSync(readFileSync(path));
  const entries = [];
  let longName;
  let paxPath;
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const size = octal(header, 124, 12);
    const flag = String.fromCharCode(header[156] || 0x30);
    const data = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (flag === 'L') {
      longName = data.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (flag === 'x') {
      const match = /\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
      paxPath = match?.[1];
      continue;
    }
    if (flag === 'g') continue;
    const prefix = field(header, 345, 155);
    let name = longName ?? paxPath ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    longName = paxPath = undefined;
    name = name.replace(/^package\//, '').replace(/\/$/, '');
    const type = flag === '0' || flag === '\0' ? 'file' : flag === '5' ? 'dir' : flag === '2' ? 'symlink' : 'other';
    entries.push({ path: name, type, mode: octal(header, 100, 8) & 0o7777, data: Buffer.from(data) });
  }
  return entries;
}

/** Every relative file path a manifest points at: main, module, types, bin, exports, typesVersions. */
export function manifestTargets(manifest) {
  const targets = new Set();
  const add = (value) => {
    if (typeof value === 'string') {
      if (value.startsWith('./') || !value.includes(':')) targets.add(value.replace(/^\.\//, ''));
    } else if (Array.isArray(value)) value.forEach(add);
    else if (value && typeof value === 'object') Object.values(value).forEach(add);
  };
  for (const key of ['main', 'module', 'types', 'typings']) add(manifest[key]);
  add(typeof manifest.bin === 'string' ? manifest.bin : Object.values(manifest.bin ?? {}));
  add(manifest.exports);
  for (const map of Object.values(manifest.typesVersions ?? {})) add(Object.values(map));
  return [...targets].filter((target) => !target.includes('*'));
}

/** The prebuilt addons a tarball (or directory listing) holds: `prebuilds/linux-x64/*.node`. */
export function prebuildPaths(paths) {
  return paths.filter((p) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(p));
}

/**
 * What is wrong with one packed tarball, as lines (empty: good): its manifest matches the workspace's
 * (with `workspace:` replaced), dist/ and every file the manifest points at are in it, .d.ts types for
 * each entry, README.md and LICENSE, executable bins, the native addon's prebuild (unless
 * `allowMissingPrebuild`), nothing from src/ or test/.
 */
export function tarballProblems(tarball, pkg, { allowMissingPrebuild = false } = {}) {
  const problems = [];
  const entries = readTarball(tarball);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const paths = entries.filter((e) => e.type === 'file').map((e) => e.path);
  const manifestEntry = byPath.get('package.json');
  if (!manifestEntry) return [`${tarball}: no package/package.json`];
  const packed = JSON.parse(manifestEntry.data.toString('utf8'));
  if (packed.name !== pkg.name) problems.push(`name is ${packed.name}, expected ${pkg.name}`);
  if (packed.version !== pkg.version) problems.push(`version is ${packed.version}, expected ${pkg.version}`);
  if (packed.private) problems.push('package.json says private');
  for (const kind of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [name, spec] of Object.entries(packed[kind] ?? {})) {
      if (String(spec).startsWith('workspace:')) problems.push(`${kind}.${name} is still ${spec}`);
    }
  }
  if (!paths.some((p) => p.startsWith('dist/'))) problems.push('no dist/');
  for (const target of manifestTargets(packed)) {
    if (!byPath.has(target)) problems.push(`package.json points at ${target}, which is not in the tarball`);
  }
  if (!packed.types && !packed.typings) problems.push('no "types"');
  for (const [subpath, value] of Object.entries(packed.exports ?? {})) {
    if (subpath === './package.json') continue;
    const conditions = JSON.stringify(value);
    if (!/"types":"[^"]+\.d\.ts"/.test(conditions)) problems.push(`exports["${subpath}"] has no import types (.d.ts)`);
    if (!/"types":"[^"]+\.d\.cts"/.test(conditions)) problems.push(`exports["${subpath}"] has no require types (.d.cts)`);
    if (subpath !== '.') {
      const bare = subpath.replace(/^\.\//, '');
      const mapped = Object.values(packed.typesVersions ?? {}).some((map) => bare in map);
      if (!mapped) problems.push(`exports["${subpath}"] has no typesVersions entry (moduleResolution node10 would find no types)`);
    }
  }
  if (packed.exports && packed.exports['./package.json'] !== './package.json') problems.push('exports has no "./package.json"');
  for (const file of ['README.md', 'LICENSE']) if (!byPath.has(file)) problems.push(`no ${file}`);
  for (const [name, target] of Object.entries(typeof packed.bin === 'string' ? { [packed.name]: packed.bin } : packed.bin ?? {})) {
    const entry = byPath.get(target.replace(/^\.\//, ''));
    if (entry && (entry.mode & 0o111) !== 0o111) problems.push(`bin ${name} (${target}) is mode ${entry.mode.toString(8)}, not executable`);
    if (entry && !entry.data.subarray(0, 20).toString('utf8').startsWith('#!/usr/bin/env node')) problems.push(`bin ${name} has no #!/usr/bin/env node line`);
  }
  if (packed.gypfile || byPath.has('binding.gyp')) {
    if (!allowMissingPrebuild && prebuildPaths(paths).length === 0) problems.push('no prebuilds/linux-x64/*.node (run the release, or pnpm --filter @hype/kvm-sys build:prebuild)');
    if (paths.some((p) => p.startsWith('build/'))) problems.push('carries build/ (a local node-gyp build)');
  }
  const leaked = paths.filter((p) => /^(src|test)\//.test(p));
  if (leaked.length > 0) problems.push(`carries sources or tests: ${leaked.slice(0, 3).join(', ')}${leaked.length > 3 ? ', ...' : ''}`);
  return problems;
}

/**
 * The third-party packages the public packages depend on (transitively), as installed in the workspace:
 * `[{ name, version, dir }]`. Packing these beside the workspace's own tarballs lets `npm install` run
 * with `--offline`.
 */
export function thirdPartyDependencies(packages = publicPackages()) {
  const ours = new Set(packages.map((p) => p.name));
  const found = new Map();
  const visit = (fromDir, deps) => {
    for (const name of Object.keys(deps ?? {})) {
      if (ours.has(name)) continue;
      const require = createRequire(join(fromDir, 'package.json'));
      let manifestPath;
      try {
        manifestPath = require.resolve(`${name}/package.json`);
      } catch {
        // A package whose exports hide package.json: walk up from its main entry.
        let dir = dirname(require.resolve(name));
        while (!existsSync(join(dir, 'package.json')) || JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name !== name) dir = dirname(dir);
        manifestPath = join(dir, 'package.json');
      }
      const dir = dirname(manifestPath);
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
      const key = `${name}@${manifest.version}`;
      if (found.has(key)) continue;
      found.set(key, { name, version: manifest.version, dir });
      visit(dir, manifest.dependencies);
    }
  };
  for (const pkg of packages) visit(pkg.dir, pkg.manifest.dependencies);
  return [...found.values()];
}

/** `npm pack` of installed third-party packages (their scripts are not run); returns the tarballs' paths. */
export function packInstalled(dirs, destination) {
  if (dirs.length === 0) return [];
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination, ...dirs], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out).map((entry) => join(destination, entry.filename));
}
