/**
 * SHA-256 for the cache keys, with node:crypto loaded on first use: a start whose guest is cached
 * (recall) hashes nothing, and loading node:crypto cost ~70 ms of start-up under emulation.
 */
import { createRequire } from 'node:module';

type Crypto = typeof import('node:crypto');
let crypto: Crypto | undefined;

/** The first `hexDigits` hex digits of SHA-256 over `parts`, in order. */
export function sha256Hex(parts: readonly (Uint8Array | string)[], hexDigits = 64): string {
  crypto ??= createRequire(import.meta.url)('node:crypto') as Crypto;
  const hash = crypto.createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex').slice(0, hexDigits);
}
