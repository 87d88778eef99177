import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findCachedKernel, KERNEL_FRAGMENT_PATH, kconfigMismatches, parseKconfig, verifyKconfig } from '@hype/guest';

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
  const fragment = parseKconfig(readFileSync(KERNEL_FRAGMENT_PATH, 'utf8'), KERNEL_FRAGMENT_PATH);

  it('asks for what the VMM, the guest scripts and PVM hosts need', () => {
    const wanted: Record<string, string> = {
      CONFIG_64BIT: 'y', CONFIG_SMP: 'y', CONFIG_NR_CPUS: '8', CONFIG_X86_MPPARSE: 'y', CONFIG_ACPI: 'n', CONFIG_MODULES: 'n',
      CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE: 'y', CONFIG_SLAB: 'y', CONFIG_HZ_100: 'y', CONFIG_NO_HZ_IDLE: 'y',
      CONFIG_RANDOM_TRUST_CPU: 'y', CONFIG_VT: 'n', CONFIG_LEGACY_PTYS: 'n', CONFIG_UNWINDER_GUESS: 'y', CONFIG_UNWINDER_ORC: 'n',
      CONFIG_SERIAL_8250_CONSOLE: 'y', CONFIG_VIRTIO_MMIO: 'y', CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: 'y', CONFIG_VIRTIO_CONSOLE: 'y',
      CONFIG_VIRTIO_BLK: 'y', CONFIG_BLK_DEV_INITRD: 'y', CONFIG_DEVTMPFS: 'y', CONFIG_DEVTMPFS_MOUNT: 'y', CONFIG_EXT4_FS: 'y',
      CONFIG_KVM_GUEST: 'y', CONFIG_PARAVIRT: 'y', CONFIG_BINFMT_ELF: 'y', CONFIG_BINFMT_SCRIPT: 'y', CONFIG_PROC_FS: 'y',
      CONFIG_SYSFS: 'y', CONFIG_TMPFS: 'y', CONFIG_PRINTK: 'y', CONFIG_TTY: 'y', CONFIG_DEVMEM: 'y', CONFIG_DEVPORT: 'y',
      CONFIG_MULTIUSER: 'y', CONFIG_KERNEL_GZIP: 'y', CONFIG_RD_GZIP: 'n',
    };
    for (const [option, value] of Object.entries(wanted)) expect(fragment.get(option), option).toBe(value);
  });

  const cached = (() => {
    try {
      return findCachedKernel();
    } catch {
      return undefined; // no linux-source on this host: nothing can be cached either
    }
  })();
  it.skipIf(!cached)('landed entirely in the cached kernel build', () => {
    verifyKconfig(fragment, parseKconfig(readFileSync(cached!.config, 'utf8')), cached!.config);
  });
});
