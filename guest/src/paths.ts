import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let dir: string | undefined;

/**
 * The guest/ package directory (kernel config, rootfs, agent source), found by the package's own name
 * rather than from this file's place: this module may be bundled into another file (hype's CLI, which
 * depends on @hype/guest so that the name resolves from there too).
 */
export function guestDir(): string {
  dir ??= packageDir('@hype/guest', import.meta.url);
  return dir;
}

export function guestPath(...parts: string[]): string {
  return join(guestDir(), ...parts);
}

/**
 * The directory of package `name` as require() from `from` (a file URL or path) finds it: looked up in
 * the directories require() searches (require.resolve.paths), symlinks resolved; require.resolve() itself
 * only when none has it (a package's own code in its own checkout: Node then resolves the name to the
 * package itself). Resolving through the package's "exports" runs Node's ES module resolver: ~60 ms of
 * start-up under emulation.
 */
export function packageDir(name: string, from: string): string {
  const require = createRequire(from);
  for (const base of require.resolve.paths(name) ?? []) {
    const candidate = join(base, name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync.native(candidate);
  }
  return dirname(require.resolve(`${name}/package.json`));
}
