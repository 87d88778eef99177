import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let dir: string | undefined;

/**
 * The guest/ package directory (kernel config, rootfs, agent source), found by resolving the package's
 * own name rather than from this file's place: this module may be bundled into another file (hype's CLI,
 * which depends on @hype/guest so that the name resolves from there too).
 */
export function guestDir(): string {
  dir ??= dirname(createRequire(import.meta.url).resolve('@hype/guest/package.json'));
  return dir;
}

export function guestPath(...parts: string[]): string {
  return join(guestDir(), ...parts);
}
