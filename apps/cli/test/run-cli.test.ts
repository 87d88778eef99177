import { constants, readFileSync, truncateSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { KernelImage } from '@hype/linux-loader';
import { runCli } from '../src/run-cli.js';
import { UsageError } from '../src/usage-error.js';
import { FakeGuest, harness } from './fakes.js';
import type { CliVmConfig } from '../src/ports.js';
import { loaderCheckBoot } from '../src/boot-check.js';
import type { BootCheck } from '../src/validate.js';
import { elfKernel, fsDenying, MiB, workdir } from './helpers.js';
import packageJson from '../package.json' with { type: 'json' };

const CTRL_A = 0x01;

/** All bytes of a kernel image (a source is read whole). */
function wholeImage(image: KernelImage): Uint8Array {
  if (ArrayBuffer.isView(image)) return new Uint8Array(image);
  const bytes = new Uint8Array(image.size);
  image.readAt(bytes, 0);
  return bytes;
}

describe('runCli: usage', () => {
  it('a bad flag: one line on stderr, exit 2, no VM', async () => {
    const h = harness();
    expect(await runCli(['run', '--cpus', '99'], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: --cpus 99: the number of vCPUs must be a whole number from 1 to 8\n');
    expect(h.stdout.text).toBe('');
    expect(h.vms).toHaveLength(0);
  });

  it('--version and --help print on stdout and exit 0', async () => {
    const h = harness();
    expect(await runCli(['--version'], h.io)).toBe(0);
    expect(h.stdout.text).toBe(`${packageJson.version}\n`);
    const h2 = harness();
    expect(await runCli(['run', '--help'], h2.io)).toBe(0);
    expect(h2.stdout.text).toContain('Usage: hype run [options]');
    expect(h2.stderr.text).toBe('');
  });

  it('a bad config file: exit 2 naming the file', async () => {
    const w = workdir();
    const config = w.file('vm.json', '{"cpus": 0}');
    const h = harness();
    expect(await runCli(['run', '--config', config], h.io)).toBe(2);
    expect(h.stderr.text).toBe(`hype: ${config}: cpus 0: the number of vCPUs must be a whole number from 1 to 8\n`);
  });

  it('a missing config file', async () => {
    const h = harness();
    expect(await runCli(['run', '--config', '/nonexistent/vm.json'], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: --config /nonexistent/vm.json: no such file\n');
  });
});

describe('runCli: input files and host', () => {
  it('a missing kernel file: exit 2, checked before KVM (so it is reported on hosts without KVM too)', async () => {
    const h = harness({ kvmDevice: '/nonexistent/kvm' });
    expect(await runCli(['run', '--kernel', '/nonexistent/bzImage'], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: --kernel /nonexistent/bzImage: no such file\n');
  });

  it('an invalid kernel: the loader error, before KVM is checked', async () => {
    const w = workdir();
    const kernel = w.file('bzImage', new Uint8Array(4096).fill(0x90));
    const h = harness({ kvmDevice: '/nonexistent/kvm' });
    expect(await runCli(['run', '--kernel', kernel], h.io)).toBe(2);
    expect(h.stderr.text).toBe(`hype: kernel ${kernel}: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux\n`);
  });

  it('a truncated ELF kernel: the loader error', async () => {
    const w = workdir();
    const kernel = w.file('vmlinux', elfKernel().subarray(0, 0x1004));
    const h = harness();
    expect(await runCli(['run', '--kernel', kernel], h.io)).toBe(2);
    expect(h.stderr.text).toBe(`hype: kernel ${kernel}: truncated (segment 0 needs file bytes up to 4112, file has 4100)\n`);
  });

  it('missing initrd and disk: every problem, one line each', async () => {
    const w = workdir();
    const h = harness();
    const code = await runCli(['run', '--kernel', w.kernel(), '--initrd', 'nope.cpio', '--disk', 'nope.img'], h.io);
    expect(code).toBe(2);
    expect(h.stderr.text).toBe(
      'hype: --initrd nope.cpio: no such file\n' +
        'hype: --disk nope.img: no such file; create it first (e.g. truncate -s 1G nope.img) or use --disk mem:SIZE\n',
    );
  });

  it('an unwritable disk: suggests ,ro', async () => {
    const w = workdir();
    const disk = w.file('d.img', new Uint8Array(512));
    const h = harness({ fs: fsDenying({ [disk]: constants.W_OK }) });
    expect(await runCli(['run', '--kernel', w.kernel(), '--disk', disk], h.io)).toBe(2);
    expect(h.stderr.text).toBe(`hype: --disk ${disk}: cannot write it (permission denied); attach it read-only with ${disk},ro\n`);
  });

  it('memory too small for the kernel and initrd', async () => {
    const w = workdir();
    const initrd = w.file('initrd', new Uint8Array(8 * MiB));
    const h = harness();
    expect(await runCli(['run', '--kernel', w.kernel('vmlinux', 4 * MiB), '--initrd', initrd, '--mem', '24M'], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: memory 24 MiB too small for kernel (up to 20 MiB) + initrd (8 MiB): use --mem 48 or more\n');
  });

  it('the default memory (256 MiB) too small for a big initrd', async () => {
    const w = workdir();
    const initrd = w.file('initrd', '');
    truncateSync(initrd, 240 * MiB); // sparse: only its size matters
    const h = harness();
    expect(await runCli(['run', '--kernel', w.kernel('vmlinux', 4 * MiB), '--initrd', initrd], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: memory 256 MiB too small for kernel (up to 20 MiB) + initrd (240 MiB): use --mem 288 or more\n');
  });

  it('too long a kernel command line', async () => {
    const w = workdir();
    const h = harness();
    expect(await runCli(['run', '--kernel', w.kernel(), '--cmdline', 'x'.repeat(100_000)], h.io)).toBe(2);
    expect(h.stderr.text).toMatch(/^hype: .*command line.*\n$/);
  });

  it('no KVM device: exit 2 with what to do', async () => {
    const w = workdir();
    const h = harness({ kvmDevice: '/nonexistent/kvm' });
    expect(await runCli(['run', '--kernel', w.kernel()], h.io)).toBe(2);
    expect(h.stderr.text).toBe(
      'hype: /nonexistent/kvm not found: this host has no KVM; load the kvm_intel or kvm_amd module, enable virtualization ' +
        'in the firmware, or on a cloud VM enable nested virtualization; and the nested fallback is unavailable: ' +
        'this hype cannot nest (no rig)\n',
    );
  });

  it('a KVM device we may not open: exit 2, join the kvm group', async () => {
    const w = workdir();
    const device = w.file('kvm', '');
    const h = harness({ kvmDevice: device, fs: fsDenying({ [device]: constants.W_OK }) });
    expect(await runCli(['run', '--kernel', w.kernel()], h.io)).toBe(2);
    expect(h.stderr.text).toBe(
      `hype: ${device}: permission denied; add your user to the kvm group: sudo usermod -aG kvm $USER (then log in again)` +
        '; and the nested fallback is unavailable: this hype cannot nest (no rig)\n',
    );
  });

  it('warns when --mem is more than the host has, and still runs', async () => {
    const w = workdir();
    const h = harness({ totalMemBytes: 1024 * MiB });
    const code = runCli(['run', '--kernel', w.kernel(), '--mem', '2G'], h.io);
    (await h.vmStarted).finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stderr.text).toBe("hype: warning: --mem 2G is more than this host's RAM (1G)\n");
  });
});

describe('runCli: running a VM', () => {
  it('builds the VmConfig from flags and config file, and powers off cleanly with exit 0', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const initrd = w.file('initrd', 'x');
    const disk = w.file('root.img', new Uint8Array(4096));
    const config = w.file('vm.json', JSON.stringify({ kernel: 'vmlinux', cpus: 2, mem: '1G', console: 'serial', disks: ['root.img,ro'] }));
    const h = harness();
    const code = runCli(['run', '--config', config, '--initrd', initrd, '--cmdline', 'quiet', '--mem', '512', '--disk', disk, '--disk', 'mem:16M,serial=scratch'], h.io);
    const vm = await h.vmStarted;
    expect(vm.config).toEqual({
      kernel,
      initrd,
      cmdline: 'quiet',
      memMiB: 512,
      cpus: 2,
      disks: [{ kind: 'file', path: disk }, { kind: 'memory', sizeBytes: 16 * MiB, serial: 'scratch' }],
      rng: true,
      nics: [],
      console: 'serial',
      kernelImage: expect.anything(),
    });
    expect(wholeImage(vm.config.kernelImage!)).toEqual(new Uint8Array(readFileSync(kernel))); // opened once, by the checks
    expect(vm.options.kvmDevice).toBe('/dev/null');
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stderr.text).toBe('');
  });

  it('--timings prints each VM timing event on stderr as a hype-timing JSON line', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const h = harness();
    h.io.startedAtMs = 3.25;
    const code = runCli(['run', '--kernel', kernel, '--timings'], h.io);
    const vm = await h.vmStarted;
    vm.options.onTiming?.({ event: 'first-kvm-run', ms: 12.5 });
    vm.options.onTiming?.({ event: 'boot-marker', ms: 900, value: 1 });
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    // The CLI's own two: its start (main() entered) and the moment it asks for the VM.
    expect(h.stderr.text).toMatch(
      /^hype-timing \{"event":"cli-start","ms":3\.25\}\nhype-timing \{"event":"vm-create","ms":[\d.]+\}\nhype-timing \{"event":"first-kvm-run","ms":12\.5\}\nhype-timing \{"event":"boot-marker","ms":900,"value":1\}\n$/,
    );
  });

  it('tells onVmStarted once the VM is built, and never when the run stops before', async () => {
    const w = workdir();
    const h = harness();
    let started = 0;
    h.io.onVmStarted = () => started++;
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    expect(started).toBe(1);
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    const bad = harness();
    bad.io.onVmStarted = () => started++;
    expect(await runCli(['run', '--kernel', '/nonexistent'], bad.io)).toBe(2);
    expect(started).toBe(1);
  });

  it('without --timings the VM gets no timing listener', async () => {
    const w = workdir();
    const h = harness();
    h.io.startedAtMs = 1;
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    expect(vm.options.onTiming).toBeUndefined();
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stderr.text).toBe('');
  });

  it('--net, --mac and --publish become the NICs of the VM config; --publish without a user network is exit 2', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const h = harness();
    const code = runCli(['run', '--kernel', kernel, '--net', 'user', '--net', 'tap=t0', '--mac', '52:54:00:00:00:01', '--publish', '8080:80'], h.io);
    const vm = await h.vmStarted;
    expect(vm.config.nics).toEqual([
      { kind: 'user', mac: '52:54:00:00:00:01', publish: [{ protocol: 'tcp', hostPort: 8080, guestPort: 80 }] },
      { kind: 'tap', name: 't0' },
    ]);
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    const bad = harness();
    expect(await runCli(['run', '--kernel', kernel, '--net', 'tap=t0', '--publish', '8080:80'], bad.io)).toBe(2);
    expect(bad.stderr.text).toBe('hype: --publish: forwards ports through user-mode networking; add --net user\n');
  });

  it('defaults: 256 MiB, 1 vCPU, no disks, an entropy device, hvc console, no initrd', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const h = harness();
    const code = runCli(['run', '--kernel', kernel], h.io);
    const vm = await h.vmStarted;
    expect(vm.config).toEqual({ kernel, memMiB: 256, cpus: 1, disks: [], rng: true, nics: [], console: 'hvc', kernelImage: expect.anything() });
    expect(wholeImage(vm.config.kernelImage!)).toEqual(new Uint8Array(readFileSync(kernel)));
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
  });

  it('--rng off (or "rng": false in the config file) attaches no entropy device; a bad value is one line, exit 2', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const h = harness();
    const code = runCli(['run', '--kernel', kernel, '--rng', 'off'], h.io);
    expect((await h.vmStarted).config.rng).toBe(false);
    h.vms[0].finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    const config = w.file('vm.json', JSON.stringify({ kernel: 'vmlinux', rng: false }));
    const h2 = harness();
    const code2 = runCli(['run', '--config', config], h2.io);
    expect((await h2.vmStarted).config.rng).toBe(false);
    h2.vms[0].finish({ kind: 'poweroff', status: 0 });
    expect(await code2).toBe(0);
    const h3 = harness();
    expect(await runCli(['run', '--kernel', kernel, '--rng', 'maybe'], h3.io)).toBe(2);
    expect(h3.stderr.text).toBe('hype: --rng maybe: say "on" (attach a virtio-rng entropy device, the default) or "off"\n');
    expect(h3.vms).toHaveLength(0);
  });

  it('the terminal is the console: raw mode, guest output to stdout, keys to the guest, restored at the end', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    expect(h.stdin.isRaw).toBe(true);
    expect(h.stdin.paused).toBe(false);
    vm.guestWrites('login: ');
    h.stdin.type('root\r', [0x03]);
    expect(Buffer.from(vm.input).toString('latin1')).toBe('root\r\x03');
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stdout.text).toBe('login: ');
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
    expect(h.stdin.paused).toBe(true);
    expect(h.stdin.listenerCount('data')).toBe(0);
    expect(h.signals.count).toBe(0);
    expect(h.cleanups.size).toBe(0);
  });

  it('hands the kernel the checks opened to createVm, then lets go of it (not resident for the VM\'s life)', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const h = harness();
    let given: CliVmConfig | undefined;
    const createVm = h.io.createVm;
    h.io.createVm = (config, options) => {
      given = config;
      expect(wholeImage(config.kernelImage!)).toEqual(new Uint8Array(readFileSync(kernel)));
      return createVm(config, options);
    };
    const code = runCli(['run', '--kernel', kernel], h.io);
    const vm = await h.vmStarted;
    expect(given).toBeDefined();
    expect(given!.kernelImage).toBeUndefined();
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
  });

  it('registers a terminal restore for abrupt exits, which restores raw mode', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    expect(h.cleanups.size).toBe(1);
    for (const cleanup of h.cleanups) cleanup();
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
  });

  it('Ctrl-A x stops the VM: exit 0, terminal restored', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.guestWrites('# ');
    h.stdin.type('ls', [CTRL_A], 'x');
    expect(await code).toBe(0);
    expect(vm.stopCalls).toBe(1);
    expect(Buffer.from(vm.input).toString()).toBe('ls');
    expect(h.stderr.text).toBe('\nhype: terminated by Ctrl-A x\n');
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
  });

  it('Ctrl-A Ctrl-A sends a Ctrl-A; Ctrl-A h prints the keys', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    h.stdin.type([CTRL_A, CTRL_A], [CTRL_A], 'h');
    expect(vm.input).toEqual([CTRL_A]);
    expect(h.stderr.text).toContain('Ctrl-A x  quit hype');
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
  });

  it('stdin that is not a terminal: no raw mode, no escapes, bytes pass through', async () => {
    const w = workdir();
    const h = harness({ tty: false });
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    h.stdin.type([CTRL_A], 'x', 'echo hi\n');
    expect(vm.input).toEqual([CTRL_A, ...Buffer.from('xecho hi\n')]);
    expect(vm.stopCalls).toBe(0);
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stdin.rawModeCalls).toEqual([]);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const)('%s stops the VM cleanly: exit %i', async (signal, exitCode) => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.guestWrites('done\n');
    h.signals.send(signal);
    expect(await code).toBe(exitCode);
    expect(vm.stopCalls).toBe(1);
    expect(h.stderr.text).toBe(`hype: stopped by ${signal}\n`);
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
    expect(h.signals.count).toBe(0);
  });

  it('a VM that does not stop: gives up after the timeout', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.honoursStop = false;
    h.signals.send('SIGTERM');
    expect(await code).toBe(143);
    expect(h.stderr.text).toBe('hype: the VM did not stop within 50 ms; exiting anyway\nhype: stopped by SIGTERM\n');
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
  });

  it('a second signal does not wait for the VM', async () => {
    const w = workdir();
    const h = harness({ stopTimeoutMs: 60_000 });
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.honoursStop = false;
    h.signals.send('SIGINT');
    h.signals.send('SIGINT');
    expect(await code).toBe(130);
    expect(vm.stopCalls).toBe(1);
  });

  it.each([
    [{ kind: 'poweroff', status: 3 } as const, 1, 'hype: guest powered off with status 3\n'],
    [{ kind: 'reboot' } as const, 3, 'hype: guest rebooted (or panicked); hype does not restart it\n'],
    [{ kind: 'triple-fault' } as const, 4, 'hype: guest triple fault (x86 shutdown): the guest crashed\n'],
    [{ kind: 'internal-error', message: 'KVM_EXIT_INTERNAL_ERROR: emulation failure' } as const, 5, 'hype: internal error: KVM_EXIT_INTERNAL_ERROR: emulation failure\n'],
    [{ kind: 'internal-error', message: 'emulation failure', detail: 'RIP=0\nRAX=1' } as const, 5, 'hype: internal error: emulation failure\nRIP=0\nRAX=1\n'],
  ])('outcome %j -> exit %i', async (outcome, exitCode, message) => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.guestWrites('last line\n');
    vm.finish(outcome);
    expect(await code).toBe(exitCode);
    expect(h.stderr.text).toBe(message);
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
  });

  it('run() rejecting is an internal error (exit 5), terminal restored', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.crash(new Error('vcpu thread died'));
    expect(await code).toBe(5);
    expect(h.stderr.text).toMatch(/^hype: internal error: Error: vcpu thread died\n/);
    expect(h.stdin.rawModeCalls).toEqual([true, false]);
  });

  it('createVm failing: exit 5, or exit 2 for an input error', async () => {
    const w = workdir();
    const h = harness({ createVm: async () => { throw new Error('KVM_CREATE_VM failed: EMFILE'); } });
    expect(await runCli(['run', '--kernel', w.kernel()], h.io)).toBe(5);
    expect(h.stderr.text).toBe('hype: internal error: cannot start the VM: KVM_CREATE_VM failed: EMFILE\n');
    expect(h.stdin.rawModeCalls).toEqual([]);

    // Duck-typed look-alikes are VMM failures: only a UsageError is the user's input.
    const lookAlike = Object.assign(new Error('--disk https://h/x.img: HTTP 404 Not Found'), { code: 'ERR_HYPE_INPUT', name: 'LoaderError' });
    const h1 = harness({ createVm: async () => { throw lookAlike; } });
    expect(await runCli(['run', '--kernel', w.kernel()], h1.io)).toBe(5);

    const inputError = new UsageError('--disk https://h/x.img: HTTP 404 Not Found', { cause: new Error('404') });
    const h2 = harness({ createVm: async () => { throw inputError; } });
    expect(await runCli(['run', '--kernel', w.kernel()], h2.io)).toBe(2);
    expect(h2.stderr.text).toBe('hype: --disk https://h/x.img: HTTP 404 Not Found\n');

    const h3 = harness({ createVm: async () => { throw new UsageError('kernel command line too long'); } });
    expect(await runCli(['run', '--kernel', w.kernel()], h3.io)).toBe(2);
    expect(h3.stderr.text).toBe('hype: kernel command line too long\n');
  });
});

describe('runCli: the default guest', () => {
  it('no --kernel: builds/uses the default guest with progress, then boots its kernel and initrd', async () => {
    const w = workdir();
    const kernel = w.kernel('default-bzImage');
    const initrd = w.file('default-initrd', 'cpio');
    const guest = new FakeGuest({ kernel, initrd }, ['building the guest kernel (cached after the first time)', 'kernel built']);
    const h = harness({ guest });
    const code = runCli(['run', '--cpus', '2'], h.io);
    const vm = await h.vmStarted;
    expect(vm.config).toEqual({ kernel, initrd, memMiB: 256, cpus: 2, disks: [], rng: true, nics: [], console: 'hvc', kernelImage: expect.anything() });
    expect(wholeImage(vm.config.kernelImage!)).toEqual(new Uint8Array(readFileSync(kernel)));
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stderr.text).toBe('hype: building the guest kernel (cached after the first time)\nhype: kernel built\n');
  });

  it('no --kernel with --initrd: the default kernel with your initrd', async () => {
    const w = workdir();
    const kernel = w.kernel('default-bzImage');
    const mine = w.file('my-initrd', 'cpio');
    const h = harness({ guest: new FakeGuest({ kernel, initrd: w.file('default-initrd', 'x') }) });
    const code = runCli(['run', '--initrd', mine], h.io);
    const vm = await h.vmStarted;
    expect(vm.config.initrd).toBe(mine);
    expect(vm.config.kernel).toBe(kernel);
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
  });

  it('the default guest is not built when KVM is missing', async () => {
    const guest = new FakeGuest(new Error('unreachable'));
    const h = harness({ guest, kvmDevice: '/nonexistent/kvm' });
    expect(await runCli(['run'], h.io)).toBe(2);
    expect(guest.calls).toBe(0);
  });

  it('the memory check applies to the default guest too', async () => {
    const w = workdir();
    const h = harness({ guest: new FakeGuest({ kernel: w.kernel('k', 4 * MiB), initrd: w.file('i', new Uint8Array(MiB)) }) });
    expect(await runCli(['run', '--mem', '16'], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: memory 16 MiB too small for kernel (up to 20 MiB) + initrd (1 MiB): use --mem 48 or more\n');
  });

  it('a failed guest build: exit 1 with the reason', async () => {
    const h = harness({ guest: new FakeGuest(new Error('linux-source is not installed: apt-get install linux-source')) });
    expect(await runCli(['run'], h.io)).toBe(1);
    expect(h.stderr.text).toBe('hype: building the default guest failed: linux-source is not installed: apt-get install linux-source\n');
  });

  it('a broken default guest kernel is an internal error', async () => {
    const w = workdir();
    const bad = w.file('bad', new Uint8Array(4096));
    const h = harness({ guest: new FakeGuest({ kernel: bad, initrd: w.file('i', 'x') }) });
    expect(await runCli(['run'], h.io)).toBe(5);
    expect(h.stderr.text).toBe(
      `hype: internal error: the default guest: kernel ${bad}: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux\n`,
    );
  });

  it('hype guest build prints the files; exit 0', async () => {
    const guest = new FakeGuest({ kernel: '/c/kernel-abc/bzImage', initrd: '/c/initrd-def.cpio' }, ['kernel: cached']);
    const h = harness({ guest });
    expect(await runCli(['guest', 'build'], h.io)).toBe(0);
    expect(h.stdout.text).toBe('kernel: /c/kernel-abc/bzImage\ninitrd: /c/initrd-def.cpio\n');
    expect(h.stderr.text).toBe('hype: kernel: cached\n');
  });

  it('hype guest build failing: exit 1', async () => {
    const h = harness({ guest: new FakeGuest(new Error('make failed (exit 2), see /c/build.log')) });
    expect(await runCli(['guest', 'build'], h.io)).toBe(1);
    expect(h.stderr.text).toBe('hype: building the default guest failed: make failed (exit 2), see /c/build.log\n');
  });
});

describe('runCli: the boot check', () => {
  it('gets the kernel image, initrd size and VM shape', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const initrd = w.file('initrd', new Uint8Array(5000));
    const seen: BootCheck[] = [];
    const h = harness({ checkBoot: (check) => { seen.push(check); loaderCheckBoot(check); } });
    const code = runCli(['run', '--kernel', kernel, '--initrd', initrd, '--mem', '1G', '--cpus', '3', '--cmdline', 'quiet'], h.io);
    (await h.vmStarted).finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ kernelName: kernel, initrdBytes: 5000, initrdName: initrd, memMiB: 1024, cpus: 3, cmdline: 'quiet' });
    // An ELF kernel is handed on as its file (the loader reads its headers and segments from it).
    expect(ArrayBuffer.isView(seen[0].kernel)).toBe(false);
    expect(wholeImage(seen[0].kernel)).toEqual(new Uint8Array(readFileSync(kernel)));
    expect(wholeImage(seen[0].kernel)).toHaveLength(0x1010);
  });
});

describe('runCli: console output flow and VM log', () => {
  it('passes the terminal\'s backpressure to the VM and removes its drain listeners at the end', async () => {
    const w = workdir();
    const h = harness();
    const listeners = new Set<() => void>();
    let full = false;
    h.io.stdout = {
      write: () => !full,
      on: (_event: 'drain', listener: () => void) => listeners.add(listener),
      removeListener: (_event: 'drain', listener: () => void) => listeners.delete(listener),
    };
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    let drained = 0;
    vm.options.onConsoleDrain(() => drained++);
    expect(vm.options.consoleOutput(Buffer.from('a'))).toBe(true);
    full = true;
    expect(vm.options.consoleOutput(Buffer.from('b'))).toBe(false);
    for (const listener of listeners) listener();
    expect(drained).toBe(1);
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(listeners.size).toBe(0);
  });

  it('VM warnings reach stderr (CR LF while the terminal is raw); debug only with HYPE_LOG=debug', async () => {
    const w = workdir();
    const h = harness();
    const code = runCli(['run', '--kernel', w.kernel()], h.io);
    const vm = await h.vmStarted;
    vm.options.logger.warn('virtio-blk: request past the end');
    vm.options.logger.debug('not shown');
    vm.finish({ kind: 'poweroff', status: 0 });
    expect(await code).toBe(0);
    expect(h.stderr.text).toBe('hype: warning: virtio-blk: request past the end\r\n');

    const h2 = harness({ tty: false });
    h2.io.env.HYPE_LOG = 'debug';
    const code2 = runCli(['run', '--kernel', w.kernel()], h2.io);
    const vm2 = await h2.vmStarted;
    vm2.options.logger.debug('kernel loaded\nsecond line');
    vm2.finish({ kind: 'poweroff', status: 0 });
    expect(await code2).toBe(0);
    expect(h2.stderr.text).toBe('hype: debug: kernel loaded\nsecond line\n');
  });

  it('a bad HYPE_LOG is a usage error', async () => {
    const w = workdir();
    const h = harness();
    h.io.env.HYPE_LOG = 'loud';
    expect(await runCli(['run', '--kernel', w.kernel()], h.io)).toBe(2);
    expect(h.stderr.text).toBe('hype: HYPE_LOG=loud: use one of debug, info, warn, error, silent\n');
  });
});
