// Inputs chosen to break the CLI's own checks: config keys that name Object.prototype members, and
// memory disks too large for the host (which once passed the checks and failed later, deep in the
// block backend, with "Invalid typed array length").
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/args.js';
import { loadConfigFile } from '../src/config-file.js';
import { maxMemoryDiskBytes } from '../src/options.js';
import { runCli } from '../src/run-cli.js';
import { UsageError } from '../src/usage-error.js';
import { jsonError } from './helpers.js';
import { MAX_VIRTIO_DEVICES } from '@hype/vm';
import { harness } from './fakes.js';
import { workdir } from './helpers.js';

const KEYS = 'the keys are kernel, initrd, cmdline, mem, cpus, disks, console, rng, net, mac, publish';

function usageMessage(argv: string[]): string {
  const result = parseArgs(argv);
  if (!(result instanceof UsageError)) throw new Error(`expected a UsageError for ${argv.join(' ')}, got ${JSON.stringify(result)}`);
  return result.message;
}

describe('config file: keys that are Object.prototype members', () => {
  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'])('"%s" is an unknown key, with no bogus suggestion', async (key) => {
    // JSON.parse makes "__proto__" an own key (an object literal would set the prototype instead).
    const text = `{"${key}": {"kernel": "x"}}`;
    expect(jsonError(JSON.parse(text))).toBe(`vm.json: unknown key "${key}"; ${KEYS}`);
    await expect(loadConfigFile('vm.json', async () => text)).rejects.toThrow(`vm.json: unknown key "${key}"; ${KEYS}`);
  });

  it('suggestions still work', () => {
    expect(jsonError({ vcpus: 2 })).toBe('vm.json: unknown key "vcpus"; did you mean "cpus"?');
  });
});

describe('memory disks larger than the host can hold', () => {
  const max = maxMemoryDiskBytes();

  it('the bound is the smaller of the largest host buffer and the host RAM', () => {
    expect(max.bytes).toBeGreaterThan(0);
    expect(max.bytes).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    expect(["the host's RAM", 'one host buffer']).toContain(max.limitedBy);
  });

  it.each([
    [['run', '--disk', 'mem:100T'], '--disk mem:100T'],
    [['run', '--disk', 'mem:100T,serial=big'], '--disk mem:100T,serial=big'],
    [['run', '--disk', 'mem:104857600'], '--disk mem:104857600'], // a bare number is MiB: 100 TiB
  ])('%j: one line naming the flag', (argv, at) => {
    const message = usageMessage(argv);
    expect(message).toMatch(new RegExp(`^${at.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: a memory disk is held in host memory; at most \\d+(\\.\\d)?[GM] here \\((the host's RAM|one host buffer)\\); use a disk image file for more$`));
    expect(message).not.toContain('\n');
  });

  it('one byte-sector past the bound is refused; the bound itself (rounded to sectors) is accepted', () => {
    const atMost = Math.floor(max.bytes / 512) * 512;
    const over = `mem:${(atMost + 512) / 1024}K`;
    expect(usageMessage(['run', '--disk', over])).toMatch(/a memory disk is held in host memory/);
    const parsed = parseArgs(['run', '--disk', `mem:${atMost / 1024}K`]);
    expect(parsed).not.toBeInstanceOf(UsageError);
  });

  it('in a config file too, named by its key', () => {
    expect(jsonError({ disks: ['mem:100T'] })).toMatch(/^vm\.json: disks\[0\] "mem:100T": a memory disk is held in host memory; at most /);
    expect(jsonError({ disks: [{ mem: '100T' }] })).toMatch(/^vm\.json: disks\[0\]: a memory disk is held in host memory; at most /);
  });

  it('hype run --disk mem:100T: exit 2 with the one line, and no VM is made', async () => {
    const h = harness();
    expect(await runCli(['run', '--disk', 'mem:100T'], h.io)).toBe(2);
    expect(h.stderr.text).toMatch(/^hype: --disk mem:100T: a memory disk is held in host memory; at most [^\n]+\n$/);
    expect(h.vms).toHaveLength(0);
  });
});

describe('more disks than virtio slots', () => {
  it('is one line naming --disk and the limit, exit 2, before any VM', async () => {
    const w = workdir();
    const h = harness();
    const disks = Array.from({ length: MAX_VIRTIO_DEVICES }, () => ['--disk', 'mem:1M']).flat();
    expect(await runCli(['run', '--kernel', w.kernel(), ...disks], h.io)).toBe(2);
    expect(h.stderr.text).toBe(
      `hype: --disk: ${MAX_VIRTIO_DEVICES} disks, at most ${MAX_VIRTIO_DEVICES - 2} (hype has ${MAX_VIRTIO_DEVICES} virtio slots; taken: the virtio console, the entropy device (--rng off frees it))\n`,
    );
    expect(h.vms).toHaveLength(0);
    const serial = harness();
    const code = runCli(['run', '--kernel', w.kernel(), '--console', 'serial', '--rng', 'off', ...disks], serial.io);
    (await serial.vmStarted).finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
  });

  it('network interfaces and the vsock device take slots too', async () => {
    const w = workdir();
    const h = harness();
    const max = MAX_VIRTIO_DEVICES - 2 - 3 - 1;
    const disks = Array.from({ length: max + 1 }, () => ['--disk', 'mem:1M']).flat();
    const nets = ['--net', 'tap=a', '--net', 'tap=b', '--net', 'tap=c'];
    expect(await runCli(['run', '--kernel', w.kernel(), ...nets, ...disks, '--', 'true'], h.io)).toBe(125);
    expect(h.stderr.text).toBe(
      `hype: --disk: ${max + 1} disks, at most ${max} (hype has ${MAX_VIRTIO_DEVICES} virtio slots; taken: the virtio console, the entropy device (--rng off frees it), 3 network interfaces, the vsock device (for -- CMD or --vsock))\n`,
    );
    expect(h.vms).toHaveLength(0);
  });
});
