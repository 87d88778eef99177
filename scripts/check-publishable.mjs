#!/usr/bin/env node
// The `prepublishOnly` guard of every public package: refuses to publish a package directory whose build
// output is missing or older than its sources, or that lacks README.md, LICENSE or (for the native addon)
// a prebuild.
//
//   node scripts/check-publishable.mjs <package dir> [<package dir> ...]
//
// Exit 0 when all are fine; otherwise one line per problem on stderr and exit 1.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestTargets, prebuildPaths } from './lib/pack.mjs';

function files(dir, base = dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(full, base));
    else if (entry.isFile()) out.push(relative(base, full));
  }
  return out;
}

const newest = (paths) => Math.max(0, ...paths.map((p) => statSync(p).mtimeMs));

/** The problems that keep the package in `dir` from being published (empty: none). */
export function publishProblems(dir) {
  const root = resolve(dir);
  const manifestPath = join(root, 'package.json');
  if (!existsSync(manifestPath)) return [`${root}: no package.json`];
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const name = manifest.name ?? root;
  const problems = [];
  if (manifest.private) problems.push(`${name} is private`);

  const dist = join(root, 'dist');
  const built = files(dist).map((f) => join(dist, f));
  if (built.length === 0) {
    problems.push(`${name}: dist/ is missing or empty; run \`pnpm build\` at the repository root`);
  } else {
    const sources = ['src', 'node'].flatMap((d) => files(join(root, d)).map((f) => join(root, d, f)));
    if (sources.length > 0 && newest(sources) > newest(built)) {
      problems.push(`${name}: dist/ is older than the sources; run \`pnpm build\` at the repository root`);
    }
    for (const target of manifestTargets(manifest)) {
      if (!existsSync(join(root, target))) problems.push(`${name}: package.json points at ${target}, which does not exist`);
    }
  }
  for (const file of ['README.md', 'LICENSE']) {
    if (!existsSync(join(root, file))) problems.push(`${name}: no ${file}`);
  }
  if (manifest.gypfile || existsSync(join(root, 'binding.gyp'))) {
    const prebuilds = prebuildPaths(files(join(root, 'prebuilds')).map((f) => `prebuilds/${f}`));
    if (prebuilds.length === 0) {
      problems.push(`${name}: no prebuilds/linux-x64/*.node; run \`node scripts/release.mjs\` (or \`pnpm --filter ${name} build:prebuild\`)`);
    } else {
      const sources = [join(root, 'binding.gyp'), ...files(join(root, 'native')).map((f) => join(root, 'native', f))];
      if (newest(sources) > Math.min(...prebuilds.map((p) => statSync(join(root, p)).mtimeMs))) {
        problems.push(`${name}: a prebuild is older than native/ or binding.gyp; run \`pnpm --filter ${name} build:prebuild\``);
      }
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dirs = process.argv.slice(2);
  if (dirs.length === 0) {
    console.error('usage: node scripts/check-publishable.mjs <package dir> [...]');
    process.exit(2);
  }
  const problems = dirs.flatMap(publishProblems);
  for (const problem of problems) console.error(`check-publishable: ${problem}`);
  process.exit(problems.length === 0 ? 0 : 1);
}
