// TUN/TAP: the constants against the compiled <linux/if_tun.h>, and tunSetIff. Creating an interface
// needs CAP_NET_ADMIN: that part runs as root only, in a child process inside a fresh network namespace
// (`unshare --net`), so nothing is created in the host's network.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { cProgram } from '../../../scripts/test/c-values.js';
import { IFNAMSIZ, TUNSETIFF, TunFlag, addon, packageRoot, tunConstantsByMacroName } from '../src/index.js';

const native = addon();
const ENOTTY = 25;
const EBUSY = 16;
const EINVAL = 22;
const EPERM = 1;

const tunH = cProgram({ check: 'the compiled linux/if_tun.h check', includes: ['sys/ioctl.h', 'linux/if.h', 'linux/if_tun.h'] });

describe('TUN/TAP constants match <linux/if_tun.h>', () => {
  it.skipIf(!tunH.canCompile)('every constant, under its macro name, and struct ifreq as tunSetIff fills it', () => {
    const ours = tunConstantsByMacroName();
    expect(tunH.values(Object.fromEntries(Object.keys(ours).map((name) => [name, name])))).toEqual(ours);
    // What the addon relies on (the compiler lays the struct out for it; this documents the ABI).
    expect(tunH.values({ size: 'sizeof(struct ifreq)', name: 'offsetof(struct ifreq, ifr_name)', flags: 'offsetof(struct ifreq, ifr_flags)' })).toEqual({
      size: 40,
      name: 0,
      flags: IFNAMSIZ,
    });
    expect(TUNSETIFF).toBe(0x400454ca);
  });
});

describe('tunSetIff', () => {
  it('returns -errno from the kernel (an eventfd is not /dev/net/tun)', () => {
    const fd = native.eventfd(0);
    expect(native.tunSetIff(fd, 'tap0', TunFlag.TAP | TunFlag.NO_PI)).toBe(-ENOTTY);
    native.close(fd);
  });

  it('refuses names of IFNAMSIZ bytes or more (counted in UTF-8) before calling the kernel', () => {
    const fd = native.eventfd(0);
    expect(native.tunSetIff(fd, 'a'.repeat(15), 0)).toBe(-ENOTTY);
    expect(() => native.tunSetIff(fd, 'a'.repeat(16), 0)).toThrow(/tunSetIff: name must be at most 15 bytes/);
    expect(() => native.tunSetIff(fd, 'é'.repeat(8), 0)).toThrow(RangeError); // 16 bytes
    native.close(fd);
  });

  const root = process.getuid?.() === 0;
  const tun = existsSync('/dev/net/tun');
  const unshare = root && spawnSync('unshare', ['--net', '--', 'true']).status === 0;
  const why = !root ? 'needs root (CAP_NET_ADMIN)' : !tun ? 'no /dev/net/tun (modprobe tun)' : 'unshare --net does not work here';

  /** Runs `body` (CommonJS, with `native` and `fs`) in `unshare <flags> node`; returns what it printed as JSON. */
  const inNamespace = (flags: string[], body: string): unknown => {
    const nodeGypBuild = createRequire(import.meta.url).resolve('node-gyp-build');
    const script = `
      const native = require(${JSON.stringify(nodeGypBuild)})(${JSON.stringify(packageRoot())});
      const fs = require('node:fs');
      const open = () => fs.openSync('/dev/net/tun', fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      process.stdout.write(JSON.stringify((() => { ${body} })()));
    `;
    const child = spawnSync('unshare', [...flags, '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    return JSON.parse(child.stdout);
  };

  it.skipIf(!(root && tun && unshare))(`creates and attaches TAP interfaces (root, in a fresh network namespace) ${root && tun && unshare ? '' : `[skipped: ${why}]`}`, () => {
    const TAP = TunFlag.TAP | TunFlag.NO_PI;
    const result = inNamespace(
      ['--net'],
      `
      const a = open(), b = open(), c = open();
      return {
        template: native.tunSetIff(a, 'hype%d', ${TAP}),       // the kernel picks the number
        busy: native.tunSetIff(b, 'hype0', ${TAP}),            // one queue, already attached
        notTap: native.tunSetIff(b, 'lo', ${TAP}),             // exists, not a TAP device
        tunOnTap: native.tunSetIff(c, 'hype0', ${TunFlag.TUN | TunFlag.NO_PI}),
        named: native.tunSetIff(c, 'hype-named', ${TAP}),
        links: fs.readFileSync('/proc/self/net/dev', 'utf8').split('\\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim()).sort(),
      };
    `,
    );
    expect(result).toEqual({
      template: 'hype0',
      busy: -EBUSY,
      notTap: -EINVAL,
      tunOnTap: -EINVAL,
      named: 'hype-named',
      links: ['hype-named', 'hype0', 'lo'],
    });
  });

  it.skipIf(!(root && tun && unshare))(`without CAP_NET_ADMIN: EPERM (a user namespace inside a fresh network namespace) ${root && tun && unshare ? '' : `[skipped: ${why}]`}`, () => {
    // The network namespace belongs to the initial user namespace, where the process has no capability.
    expect(inNamespace(['--net', '--', 'unshare', '--user'], `return native.tunSetIff(open(), 'hype0', ${TunFlag.TAP | TunFlag.NO_PI});`)).toBe(-EPERM);
  });
});
