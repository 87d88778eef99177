import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findCachedKernel, KERNEL_FRAGMENT_PATH, kconfigMismatches, parseKconfig, resolveKconfigFragment, verifyKconfig } from '@hype/guest';

describe('parseKconfig', () => {
  it('reads set and unset options and skips comments and blank lines', () => {
    const config = parseKconfig('# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=8\nCONFIG_D="x y"\n');
    expect([...config]).toEqual([
      ['CONFIG_A', 'y'],
      ['CONFIG_B', 'n'],
      ['CONFIG_C', '8'],
      ['CONFIG_D', '"x y"'],
    ]);
  });

  it('rejects lines that are not Kconfig and contradictory duplicates, naming the line', () => {
    expect(() => parseKconfig('CONFIG_A=y\nSMP=y\n', 'frag')).toThrow('frag:2: not a Kconfig line: SMP=y');
    expect(() => parseKconfig('CONFIG_A=y\n# CONFIG_A is not set\n', 'frag')).toThrow(/frag:2: CONFIG_A set twice/);
    expect(() => parseKconfig('CONFIG_A=\n', 'frag')).toThrow(/empty value/);
    expect(parseKconfig('CONFIG_A=y\nCONFIG_A=y\n').get('CONFIG_A')).toBe('y');
  });

  it('refuses an unresolved version block, and reads other comments as comments', () => {
    expect(() => parseKconfig('CONFIG_A=y\n#if linux < 6.5\nCONFIG_B=y\n#endif\n', 'frag')).toThrow(/frag:2: #if belongs to a Linux-version block: resolve/);
    expect(() => parseKconfig('#else\n', 'frag')).toThrow(/frag:1: #else belongs/);
    expect(() => parseKconfig('#endif\n', 'frag')).toThrow(/frag:1: #endif belongs/);
    expect([...parseKconfig('# if unsure, say N\n#iffy\n#endifs\nCONFIG_A=y\n')]).toEqual([['CONFIG_A', 'y']]);
  });
});

describe('resolveKconfigFragment', () => {
  const fragment = [
    'CONFIG_A=y', // 1
    '#if linux < 6.5', // 2
    '# old', // 3
    'CONFIG_OLD=y', // 4
    '#else', // 5
    'CONFIG_NEW=y', // 6
    '#endif', // 7
    '  #if   linux>=6.12  ', // 8
    'CONFIG_LATEST=y', // 9
    '#endif', // 10
    '# CONFIG_B is not set', // 11
  ].join('\n');
  const options = (version: string) => [...parseKconfig(resolveKconfigFragment(fragment, version, 'frag').text, 'frag')];

  it('keeps the lines of the blocks that apply to the version, compared number by number', () => {
    expect(options('6.1')).toEqual([['CONFIG_A', 'y'], ['CONFIG_OLD', 'y'], ['CONFIG_B', 'n']]);
    expect(options('6.1.192')).toEqual(options('6.1'));
    expect(options('6.4.99')).toEqual(options('6.1'));
    // V itself and its point releases are not < V; 6.12 > 6.9 (not a string comparison).
    expect(options('6.5')).toEqual([['CONFIG_A', 'y'], ['CONFIG_NEW', 'y'], ['CONFIG_B', 'n']]);
    expect(options('6.9')).toEqual(options('6.5'));
    expect(options('6.12')).toEqual([['CONFIG_A', 'y'], ['CONFIG_NEW', 'y'], ['CONFIG_LATEST', 'y'], ['CONFIG_B', 'n']]);
    expect(options('6.12.118')).toEqual(options('6.12'));
    expect(options('7.0')).toEqual(options('6.12'));
  });

  it('blanks directives and skipped lines, so line numbers stay those of the file', () => {
    const { text, versionDependent } = resolveKconfigFragment(fragment, '6.12', 'frag');
    expect(versionDependent).toBe(true);
    expect(text.split('\n')).toEqual(['CONFIG_A=y', '', '', '', '', 'CONFIG_NEW=y', '', '', 'CONFIG_LATEST=y', '', '# CONFIG_B is not set']);
    expect(() => parseKconfig(resolveKconfigFragment('#if linux >= 6.2\nCONFIG_A=y\n#endif\nCONFIG_A=m\n', '6.12').text, 'frag')).toThrow(
      /frag:4: CONFIG_A set twice/,
    );
  });

  it('leaves a fragment without blocks alone, for any version, unknown included', () => {
    const plain = '# CONFIG_A is not set\nCONFIG_B=y\n';
    expect(resolveKconfigFragment(plain, 'unknown')).toEqual({ text: plain, versionDependent: false });
    expect(resolveKconfigFragment(plain, '6.1')).toEqual({ text: plain, versionDependent: false });
  });

  it('names the line of each mistake', () => {
    const bad = (text: string, version = '6.1') => () => resolveKconfigFragment(text, version, 'frag');
    expect(bad('CONFIG_A=y\n#if linux < 6.5\n')).toThrow('frag:2: #if without #endif');
    expect(bad('#else\n')).toThrow('frag:1: #else without #if');
    expect(bad('#endif\n')).toThrow('frag:1: #endif without #if');
    expect(bad('#if linux < 6.5\n#else\n#else\n#endif\n')).toThrow('frag:3: a second #else for the #if of line 1');
    expect(bad('#if linux < 6.5\n#if linux < 6.2\n#endif\n#endif\n')).toThrow('frag:2: #if inside the #if of line 1 (blocks do not nest)');
    expect(bad('#if linux <= 6.5\n#endif\n')).toThrow(/frag:1: not a version condition: #if linux <= 6\.5/);
    expect(bad('#if kernel < 6.5\n#endif\n')).toThrow(/frag:1: not a version condition/);
    expect(bad('#if linux < 6.x\n#endif\n')).toThrow(/frag:1: not a version condition/);
    expect(bad('#if linux < 6.5\n#elif linux < 6.8\n#endif\n')).toThrow('frag:2: #elif is not supported');
    expect(bad('CONFIG_A=y\n#if linux < 6.5\n#endif\n', 'unknown')).toThrow(/frag:2: #if linux < 6\.5 needs the Linux version of the source, which is unknown/);
  });
});

describe('verifyKconfig', () => {
  const fragment = parseKconfig('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_N=8\n# CONFIG_GONE is not set\nCONFIG_DEP=y\n');

  it('accepts a final config holding every value, with disabled options absent or unset', () => {
    const final = parseKconfig('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_N=8\nCONFIG_DEP=y\nCONFIG_OTHER=y\n');
    expect(kconfigMismatches(fragment, final)).toEqual([]);
    expect(() => verifyKconfig(fragment, final)).not.toThrow();
  });

  it('names each option that olddefconfig dropped or changed', () => {
    const final = parseKconfig('CONFIG_A=m\nCONFIG_B=y\nCONFIG_N=64\n');
    expect(kconfigMismatches(fragment, final)).toEqual([
      { option: 'CONFIG_A', wanted: 'y', got: 'm' },
      { option: 'CONFIG_B', wanted: 'n', got: 'y' },
      { option: 'CONFIG_N', wanted: '8', got: '64' },
      { option: 'CONFIG_DEP', wanted: 'y', got: undefined },
    ]);
    expect(() => verifyKconfig(fragment, final, '/x/.config')).toThrow(
      /4 option\(s\)[^]*CONFIG_A: wanted =y, got =m[^]*CONFIG_B: wanted is not set, got =y[^]*CONFIG_N: wanted =8, got =64[^]*CONFIG_DEP: wanted =y, got absent \(dependencies not met\)/,
    );
  });
});

describe("hype's kernel fragment", () => {
  const text = readFileSync(KERNEL_FRAGMENT_PATH, 'utf8');
  const forVersion = (version: string) => parseKconfig(resolveKconfigFragment(text, version, KERNEL_FRAGMENT_PATH).text, KERNEL_FRAGMENT_PATH);
  const common: Record<string, string> = {
    CONFIG_64BIT: 'y', CONFIG_SMP: 'y', CONFIG_NR_CPUS: '8', CONFIG_X86_MPPARSE: 'y', CONFIG_ACPI: 'n', CONFIG_MODULES: 'n',
    CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE: 'y', CONFIG_HZ_100: 'y', CONFIG_NO_HZ_IDLE: 'y',
    CONFIG_VT: 'n', CONFIG_LEGACY_PTYS: 'n', CONFIG_UNWINDER_GUESS: 'y', CONFIG_UNWINDER_ORC: 'n',
    CONFIG_SERIAL_8250_CONSOLE: 'y', CONFIG_VIRTIO_MMIO: 'y', CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: 'y', CONFIG_VIRTIO_CONSOLE: 'y',
    CONFIG_VIRTIO_BLK: 'y', CONFIG_BLK_DEV_INITRD: 'y', CONFIG_DEVTMPFS: 'y', CONFIG_DEVTMPFS_MOUNT: 'y', CONFIG_EXT4_FS: 'y',
    CONFIG_KVM_GUEST: 'y', CONFIG_PARAVIRT: 'y', CONFIG_BINFMT_ELF: 'y', CONFIG_BINFMT_SCRIPT: 'y', CONFIG_PROC_FS: 'y',
    CONFIG_SYSFS: 'y', CONFIG_TMPFS: 'y', CONFIG_PRINTK: 'y', CONFIG_TTY: 'y', CONFIG_DEVMEM: 'y', CONFIG_DEVPORT: 'y',
    CONFIG_MULTIUSER: 'y', CONFIG_KERNEL_GZIP: 'y', CONFIG_RD_GZIP: 'n', CONFIG_VSOCKETS: 'y', CONFIG_VIRTIO_VSOCKETS: 'y',
    CONFIG_VIRTIO_NET: 'y', CONFIG_SIGNALFD: 'y',
  };

  it('asks Linux 6.1 for what the VMM, the guest scripts and PVM hosts need: SLAB, RANDOM_TRUST_CPU', () => {
    const fragment = forVersion('6.1');
    const wanted = { ...common, CONFIG_SLAB: 'y', CONFIG_SLOB: 'n', CONFIG_SLUB: 'n', CONFIG_RANDOM_TRUST_CPU: 'y' };
    for (const [option, value] of Object.entries(wanted)) expect(fragment.get(option), option).toBe(value);
    for (const option of ['CONFIG_SLUB_TINY', 'CONFIG_SLUB_DEBUG', 'CONFIG_INTEL_MEI']) expect(fragment.has(option), option).toBe(false);
  });

  it('asks Linux 6.12 for the same, with SLUB (not SLUB_TINY) and without the options 6.12 lacks', () => {
    const fragment = forVersion('6.12');
    const wanted = { ...common, CONFIG_SLUB: 'y', CONFIG_SLUB_TINY: 'n', CONFIG_SLUB_DEBUG: 'n', CONFIG_INTEL_MEI: 'n' };
    for (const [option, value] of Object.entries(wanted)) expect(fragment.get(option), option).toBe(value);
    for (const option of ['CONFIG_SLAB', 'CONFIG_SLOB', 'CONFIG_RANDOM_TRUST_CPU']) expect(fragment.has(option), option).toBe(false);
    // Only those lines differ between the two.
    const old = forVersion('6.1');
    const differ = [...new Set([...old.keys(), ...fragment.keys()])].filter((option) => old.get(option) !== fragment.get(option)).sort();
    expect(differ).toEqual(['CONFIG_INTEL_MEI', 'CONFIG_RANDOM_TRUST_CPU', 'CONFIG_SLAB', 'CONFIG_SLOB', 'CONFIG_SLUB', 'CONFIG_SLUB_DEBUG', 'CONFIG_SLUB_TINY']);
  });

  const cached = (() => {
    try {
      return findCachedKernel();
    } catch {
      return undefined; // no linux-source on this host: nothing can be cached either
    }
  })();
  it.skipIf(!cached)('landed entirely in the cached kernel build', () => {
    const built = JSON.parse(readFileSync(join(cached!.dir, 'build.json'), 'utf8')) as { kernelRelease: string };
    verifyKconfig(forVersion(built.kernelRelease), parseKconfig(readFileSync(cached!.config, 'utf8')), cached!.config);
  });
});
