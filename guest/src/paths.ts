import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * The guest/ package directory. Sources live in guest/src and the bundles in guest/dist, both one level
 * below it, so the same relative URL works for tests (TypeScript sources) and for the built package.
 */
export function guestDir(): string {
  return fileURLToPath(new URL('..', import.meta.url));
}

export function guestPath(...parts: string[]): string {
  return join(guestDir(), ...parts);
}
