import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hypeCacheDir, kernelCacheEntry, kernelCacheKey, KERNEL_BUILD_DRIVER_VERSION, parseKconfig } from '@hype/guest';

describe('hypeCacheDir', () => {
  it('is ~/.cache/hype unless HYPE_CACHE_DIR or XDG_CACHE_HOME says otherwise', () => {
    expect(hypeCacheDir({})).toBe(join(homedir(), '.cache', 'hype'));
    expect(hypeCacheDir({ HOME: '/home/u' })).toBe('/home/u/.cache/hype');
    expect(hypeCacheDir({ HYPE_CACHE_DIR: '' })).toBe(join(homedir(), '.cache', 'hype'));
    expect(hypeCacheDir({ HYPE_CACHE_DIR: '/srv/hype' })).toBe('/srv/hype');
    expect(kernelCacheEntry('/srv/hype', '0123456789abcdef')).toBe('/srv/hype/kernel-0123456789abcdef');
  });

  it('honours XDG_CACHE_HOME below HYPE_CACHE_DIR, ignoring an empty or relative one', () => {
    expect(hypeCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/var/cache/u' })).toBe('/var/cache/u/hype');
    expect(hypeCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/var/cache/u', HYPE_CACHE_DIR: '/srv/hype' })).toBe('/srv/hype');
    expect(hypeCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/var/cache/u', HYPE_CACHE_DIR: '' })).toBe('/var/cache/u/hype');
    expect(hypeCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '' })).toBe('/home/u/.cache/hype');
    expect(hypeCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: 'relative/cache' })).toBe('/home/u/.cache/hype');
  });
});

describe('kernelCacheKey', () => {
  const base = { fragment: parseKconfig('CONFIG_A=y\n# CONFIG_B is not set\n'), sourceVersion: 'linux-source-6.1=6.1.192-2' };
  const key = kernelCacheKey(base);

  it('is 16 hex digits and stable', () => {
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(kernelCacheKey({ ...base })).toBe(key);
  });

  it('ignores comments and the order of options', () => {
    expect(kernelCacheKey({ ...base, fragment: parseKconfig('# why B is off\n# CONFIG_B is not set\n\nCONFIG_A=y\n') })).toBe(key);
  });

  it('changes with any option value, the source version or the driver version', () => {
    const keys = [
      kernelCacheKey({ ...base, fragment: parseKconfig('CONFIG_A=m\n# CONFIG_B is not set\n') }),
      kernelCacheKey({ ...base, fragment: parseKconfig('CONFIG_A=y\nCONFIG_B=y\n') }),
      kernelCacheKey({ ...base, fragment: parseKconfig('CONFIG_A=y\n') }),
      kernelCacheKey({ ...base, sourceVersion: 'linux-source-6.1=6.1.193-1' }),
      kernelCacheKey({ ...base, driverVersion: KERNEL_BUILD_DRIVER_VERSION + 1 }),
    ];
    expect(new Set([key, ...keys]).size).toBe(keys.length + 1);
  });
});
