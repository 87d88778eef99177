#!/usr/bin/env node
// The release: build everything, prebuild the native addon, check every public package, pack each with
// `pnpm pack` and check the tarballs, install them into empty projects (scripts/test/pack-install.test.ts),
// and only with --publish run `changeset publish`. Without --publish it is a dry run that leaves the
// tarballs in a directory for inspection; nothing is uploaded.
//
//   node scripts/release.mjs [--out DIR] [--skip-build] [--skip-install-check]   dry run
//   node scripts/release.mjs --publish                                          publish (after `changeset version`)
//
// The prebuild is linux-x64 with glibc (prebuildify --napi --strip --tag-libc, through the package's
// build:prebuild script). musl is not built: Debian has no musl C++ tool chain (musl-tools is C only), so on
// musl the package compiles the addon when it is installed. See the README's "Releasing" section.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { publishProblems } from './check-publishable.mjs';
import { packPackage, publicPackages, REPO_ROOT, tarballProblems } from './lib/pack.mjs';

const USAGE = 'usage: node scripts/release.mjs [--publish] [--out DIR] [--skip-build] [--skip-install-check]';

function parse(argv) {
  const options = { publish: false, out: undefined, build: true, installCheck: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--publish') options.publish = true;
    else if (arg === '--skip-build') options.build = false;
    else if (arg === '--skip-install-check') options.installCheck = false;
    else if (arg === '--out') {
      if (argv[i + 1] === undefined) throw new Error(`--out needs a directory; ${USAGE}`);
      options.out = resolve(argv[++i]);
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}; ${USAGE}`);
  }
  return options;
}

const say = (line) => console.log(`release: ${line}`);

function step(title, command, args, env = process.env) {
  say(`${title}: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: REPO_ROOT, stdio: 'inherit', env });
  if (result.error) throw new Error(`${title}: cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${title} failed (exit ${result.status ?? result.signal})`);
}

function capture(command, args) {
  const result = spawnSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** The changesets not yet applied by `changeset version` (.changeset/*.md except README.md). */
function pendingChangesets() {
  return readdirSync(join(REPO_ROOT, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
}

function main(argv) {
  const options = parse(argv);
  const packages = publicPackages();
  say(`${packages.length} public packages: ${packages.map((p) => `${p.name}@${p.version}`).join(', ')}`);

  if (options.publish) {
    // Publishing happens from a committed tree whose versions `changeset version` has already set.
    const pending = pendingChangesets();
    if (pending.length > 0) {
      throw new Error(
        `${pending.length} changesets are not applied yet (${pending.slice(0, 3).join(', ')}, ...): run \`pnpm changeset version\`, ` +
          'review the versions and changelogs, commit, then `node scripts/release.mjs --publish`',
      );
    }
    const dirty = capture('git', ['status', '--porcelain']).trim();
    if (dirty !== '') throw new Error(`the working tree has uncommitted changes; commit them first:\n${dirty}`);
  }

  if (options.build) {
    step('build', 'pnpm', ['build']);
    step('prebuild (linux-x64, glibc)', 'pnpm', ['--filter', '@hype/kvm-sys', 'build:prebuild']);
    say('musl prebuild: not built (no musl C++ tool chain on Debian); musl hosts compile the addon on install');
  }

  say('checking every package directory (scripts/check-publishable.mjs)');
  const problems = packages.flatMap((p) => publishProblems(p.dir));
  if (problems.length > 0) throw new Error(`not publishable:\n  ${problems.join('\n  ')}`);

  const out = options.out ?? mkdtempSync(join(tmpdir(), 'hype-release-'));
  mkdirSync(out, { recursive: true });
  say(`packing with pnpm pack into ${out}`);
  const failures = [];
  for (const pkg of packages) {
    const tarball = packPackage(pkg.dir, out);
    const found = tarballProblems(tarball, pkg);
    say(`  ${pkg.name}@${pkg.version}: ${tarball}${found.length ? '' : ' (ok)'}`);
    for (const problem of found) failures.push(`${pkg.name}: ${problem}`);
  }
  if (failures.length > 0) throw new Error(`tarball checks failed:\n  ${failures.join('\n  ')}`);

  if (options.installCheck) {
    step('install check', join(REPO_ROOT, 'node_modules', '.bin', 'vitest'), ['run', 'scripts/test/pack-install.test.ts'], {
      ...process.env,
      HYPE_PACK_DIR: out,
    });
  }

  if (!options.publish) {
    step('pending versions', 'pnpm', ['changeset', 'status', '--verbose']);
    say(`dry run done: ${packages.length} tarballs in ${out}; nothing was published`);
    say('to publish: pnpm changeset version, commit, then node scripts/release.mjs --publish');
    return;
  }
  // changeset publish runs `pnpm publish` in each package whose version is not on the registry yet (each
  // package's prepublishOnly runs scripts/check-publishable.mjs again), then tags the versions in git.
  step('publish', 'pnpm', ['changeset', 'publish']);
  say('published; push the tags: git push --follow-tags');
}

try {
  main(process.argv.slice(2));
} catch (error) {
  console.error(`release: ${error.message}`);
  process.exit(1);
}
