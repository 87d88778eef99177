/**
 * --accel: where the VM runs is settled before any guest build, a missing or non-KVM device is one line
 * and exit 2, and `auto` falls back to the nested rig with one notice line.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseAccel, writableDiskDirs } from '../src/accel.js';
import { parseArgs } from '../src/args.js';
import type { NestedRig } from '../src/ports.js';
import { runCli } from '../src/run-cli.js';
import { probeKvm } from '../src/vm-adapter.js';
import { FakeGuest, harness } from './fakes.js';
import { workdir } from './helpers.js';

class FakeRig implements NestedRig {
  runs: { args: readonly string[]; rwDirs: readonly string[] }[] = [];
  constructor(
    private readonly missing: string | undefined,
    private readonly code = 0,
  ) {}
  problem() {
    return this.missing;
  }
  async run(args: readonly string[], rwDirs: readonly string[]) {
    this.runs.push({ args, rwDirs });
    return this.code;
  }
}

const guestFiles = { kernel: '/nonexistent/guest/vmlinux', initrd: '/nonexistent/guest/initrd' };

describe('chooseAccel', () => {
  it('kvm: the device or one line', () => {
    expect(chooseAccel('kvm', undefined, undefined)).toEqual({ kind: 'kvm' });
    expect(chooseAccel('kvm', '/dev/kvm not found', undefined)).toEqual({ kind: 'unusable', message: '/dev/kvm not found' });
  });
  it('auto: KVM first, then the rig with a notice, else both reasons', () => {
    expect(chooseAccel('auto', undefined, 'no qemu')).toEqual({ kind: 'kvm' });
    expect(chooseAccel('auto', 'no kvm', undefined)).toEqual({
      kind: 'nested',
      notice: 'no usable KVM here (no kvm); running nested under QEMU emulation, expect a slow guest',
    });
    expect(chooseAccel('auto', 'no kvm', 'no qemu')).toEqual({
      kind: 'unusable',
      message: 'no kvm; and the nested fallback is unavailable: no qemu',
    });
  });
  it('nested: always the rig', () => {
    expect(chooseAccel('nested', undefined, undefined).kind).toBe('nested');
    expect(chooseAccel('nested', undefined, 'no qemu')).toEqual({ kind: 'unusable', message: '--accel nested: no qemu' });
  });
  it('rejects an unknown kind naming the flag', () => {
    expect(parseArgs(['run', '--accel', 'tcg'])).toMatchObject({ message: '--accel tcg: use auto, kvm or nested' });
  });
});

describe('writableDiskDirs', () => {
  it('shares each directory once, parents before (and instead of) their children', () => {
    expect(writableDiskDirs(['/a/b/x.img', '/a/y.img', '/c/z.img', '/a/b/w.img', '/ab/q.img'], dirname)).toEqual(['/a', '/c', '/ab']);
  });
});

describe('--accel kvm with an unusable device: one line, exit 2, no guest build', () => {
  const cases: [string, () => string, RegExp][] = [
    ['a missing device', () => '/nonexistent/kvm', /^hype: \/nonexistent\/kvm not found: this host has no KVM.*\n$/],
    ['a regular file', () => workdir().file('kvm', 'not a device'), /^hype: .*\/kvm is not a KVM device \(ioctl KVM_GET_API_VERSION failed: ENOTTY.*\)\n$/],
    ['/dev/null', () => '/dev/null', /^hype: \/dev\/null is not a KVM device \(ioctl KVM_GET_API_VERSION failed: ENOTTY.*\)\n$/],
  ];
  for (const [name, device, message] of cases) {
    it(name, async () => {
      const guest = new FakeGuest(guestFiles);
      const rig = new FakeRig(undefined);
      const h = harness({ kvmDevice: device(), guest, probeKvm: async (path) => probeKvm(path), nested: rig });
      expect(await runCli(['run', '--accel', 'kvm'], h.io)).toBe(2);
      expect(h.stderr.text).toMatch(message);
      expect(h.stderr.text.split('\n')).toHaveLength(2);
      expect(guest.calls).toBe(0);
      expect(rig.runs).toHaveLength(0);
    });
  }
});

describe('--accel auto / nested: the same command again inside the rig', () => {
  it('auto without KVM: one notice line, the default guest built here, then the rig runs hype with --accel kvm', async () => {
    const w = workdir();
    const disk = w.file('root.img', new Uint8Array(4096));
    mkdirSync(join(w.dir, 'ro'));
    const roDisk = w.file('ro/seed.img', new Uint8Array(4096));
    const guest = new FakeGuest({ kernel: w.kernel(), initrd: w.file('initrd', new Uint8Array(512)) });
    const rig = new FakeRig(undefined, 7);
    const h = harness({ guest, probeKvm: async () => '/dev/kvm not found', nested: rig });
    const argv = ['run', '--disk', disk, '--disk', `${roDisk},ro`, '--disk', 'mem:8M'];
    expect(await runCli(argv, h.io)).toBe(7);
    expect(h.stderr.text).toBe('hype: no usable KVM here (/dev/kvm not found); running nested under QEMU emulation, expect a slow guest\n');
    expect(guest.calls).toBe(1);
    expect(rig.runs).toEqual([{ args: [...argv, '--accel', 'kvm'], rwDirs: [w.dir] }]);
    expect(h.vms).toHaveLength(0);
  });

  it('nested even where KVM works; a failed rig is exit 5 with a line', async () => {
    const w = workdir();
    const rig = new FakeRig(undefined, 125);
    const h = harness({ probeKvm: async () => undefined, nested: rig });
    expect(await runCli(['run', '--kernel', w.kernel(), '--accel', 'nested'], h.io)).toBe(5);
    expect(h.stderr.text).toBe(
      'hype: running nested under QEMU emulation (--accel nested), expect a slow guest\n' +
        'hype: the nested rig failed (see the message above)\n',
    );
  });

  it('a guest command runs nested too: --accel kvm goes before its --, and every status passes through (125 included)', async () => {
    const w = workdir();
    for (const status of [7, 125]) {
      const rig = new FakeRig(undefined, status);
      const h = harness({ probeKvm: async () => '/dev/kvm not found', nested: rig });
      const argv = ['run', '--kernel', w.kernel(), '--', 'sh', '-c', 'exit 7', '--accel'];
      expect(await runCli(argv, h.io)).toBe(status);
      expect(rig.runs[0].args).toEqual(['run', '--kernel', w.kernel(), '--accel', 'kvm', '--', 'sh', '-c', 'exit 7', '--accel']);
      expect(h.stderr.text).not.toContain('the nested rig failed');
    }
    const h = harness({ probeKvm: async () => '/dev/kvm not found', nested: new FakeRig(undefined, 0) });
    expect(await runCli(['run', '--kernel', w.kernel(), '--vsock', join(w.dir, 'v.sock'), '--', 'true'], h.io)).toBe(125);
    expect(h.stderr.text).toContain("the nested rig's VM is not reachable from this host");
    const awkward = harness({ probeKvm: async () => '/dev/kvm not found', nested: new FakeRig(undefined, 0) });
    const disk = w.file('a b.img', new Uint8Array(4096));
    expect(await runCli(['run', '--kernel', w.kernel(), '--disk', disk, '--', 'true'], awkward.io)).toBe(125);
    expect(awkward.stderr.text).toContain('cannot share a path with spaces');
    const tap = harness({ probeKvm: async () => '/dev/kvm not found', nested: new FakeRig(undefined, 0) });
    expect(await runCli(['run', '--kernel', w.kernel(), '--net', 'tap=t0', '--', 'true'], tap.io)).toBe(125);
    expect(tap.stderr.text).toBe("hype: --net tap=t0: the nested rig's VM cannot reach this host's TAP devices; use --net tap where /dev/kvm works\n");
    const publish = harness({ probeKvm: async () => '/dev/kvm not found', nested: new FakeRig(undefined, 0) });
    expect(await runCli(['run', '--kernel', w.kernel(), '--net', 'user', '--publish', '8080:80', '--', 'true'], publish.io)).toBe(125);
    expect(publish.stderr.text).toContain("--publish: ports of the nested rig's VM cannot be published on this host");
    const rig = new FakeRig(undefined, 0);
    const user = harness({ probeKvm: async () => '/dev/kvm not found', nested: rig });
    expect(await runCli(['run', '--kernel', w.kernel(), '--net', 'user', '--', 'true'], user.io)).toBe(0);
    expect(user.stderr.text).toContain('warning: --net user nested: the guest gets a network inside the rig only');
    expect(rig.runs[0].args).toEqual(['run', '--kernel', w.kernel(), '--net', 'user', '--accel', 'kvm', '--', 'true']);
  });

  it('auto without KVM and without QEMU: both reasons in one line, exit 2, no build', async () => {
    const guest = new FakeGuest(guestFiles);
    const h = harness({ guest, probeKvm: async () => '/dev/kvm not found', nested: new FakeRig('qemu-system-x86_64 is not installed') });
    expect(await runCli(['run'], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: /dev/kvm not found; and the nested fallback is unavailable: qemu-system-x86_64 is not installed\n');
    expect(guest.calls).toBe(0);
  });

  it('a writable disk whose path the rig cannot share: exit 2 naming it', async () => {
    const w = workdir();
    const disk = w.file('a b.img', new Uint8Array(4096));
    const rig = new FakeRig(undefined);
    const h = harness({ probeKvm: async () => 'no kvm', nested: rig });
    expect(await runCli(['run', '--kernel', w.kernel(), '--disk', `${disk}`], h.io)).toBe(2);
    expect(h.stderr.text).toContain(`cannot share a path with spaces, commas or colons`);
    expect(rig.runs).toHaveLength(0);
  });
});
