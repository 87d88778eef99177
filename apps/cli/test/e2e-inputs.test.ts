/**
 * End-to-end: the built `hype` binary on bad input. None of this needs /dev/kvm: every check runs
 * before a VM is created (and the KVM check is pointed at a path of our choosing).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import packageJson from '../package.json' with { type: 'json' };
import { ensureBuiltBin, runHype } from './bin-process.js';
import { elfKernel, MiB, workdir } from './helpers.js';

const NO_KVM = { ...process.env, HYPE_KVM_DEVICE: '/nonexistent/kvm' };

beforeAll(async () => {
  await ensureBuiltBin();
}, 300_000);

describe('hype binary: help and version', () => {
  it('--version prints the package version, exit 0', async () => {
    const result = await runHype(['--version']);
    expect(result).toMatchObject({ code: 0, stdout: `${packageJson.version}\n`, stderr: '' });
  });

  it('run --help documents the quit key and the exit codes, exit 0', async () => {
    const result = await runHype(['run', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Ctrl-A x quits hype');
    expect(result.stdout).toContain('Exit codes:');
  });

  it('no command: usage error, exit 2', async () => {
    const result = await runHype([]);
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: "hype: no command given: use 'hype run' to boot the default guest, or see 'hype --help'\n" });
  });
});

describe('hype binary: bad input exits 2 with one line', () => {
  it('an unknown flag', async () => {
    const result = await runHype(['run', '--kernal', 'bzImage']);
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: "hype: unknown option '--kernal' (Did you mean --kernel?) (see 'hype run --help')\n" });
  });

  it('a bad --mem', async () => {
    const result = await runHype(['run', '--mem', '12X']);
    expect(result).toMatchObject({ code: 2, stderr: 'hype: --mem 12X: not a size; give MiB or use a unit suffix, e.g. 512, 512M, 1G\n' });
  });

  it('a missing kernel file', async () => {
    const result = await runHype(['run', '--kernel', '/nonexistent/bzImage'], { env: NO_KVM });
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: 'hype: --kernel /nonexistent/bzImage: no such file\n' });
  });

  it('a file that is not a kernel', async () => {
    const w = workdir();
    const kernel = w.file('bzImage', new Uint8Array(8192).fill(0x41));
    const result = await runHype(['run', '--kernel', kernel, '--accel', 'kvm'], { env: NO_KVM });
    expect(result).toMatchObject({ code: 2, stderr: `hype: kernel ${kernel}: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux\n` });
  });

  it('a missing initrd and a missing disk', async () => {
    const w = workdir();
    const kernel = w.file('vmlinux', elfKernel());
    const result = await runHype(['run', '--kernel', kernel, '--initrd', join(w.dir, 'initrd.cpio'), '--disk', join(w.dir, 'root.img')], { env: NO_KVM });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `hype: --initrd ${w.dir}/initrd.cpio: no such file\n` +
        `hype: --disk ${w.dir}/root.img: no such file; create it first (e.g. truncate -s 1G ${w.dir}/root.img) or use --disk mem:SIZE\n`,
    );
  });

  it('memory too small for the kernel and initrd', async () => {
    const w = workdir();
    const kernel = w.file('vmlinux', elfKernel({ memsz: 4 * MiB }));
    const initrd = w.file('initrd', new Uint8Array(8 * MiB));
    const result = await runHype(['run', '--kernel', kernel, '--initrd', initrd, '--mem', '24M'], { env: NO_KVM });
    expect(result).toMatchObject({
      code: 2,
      stderr: 'hype: memory 24 MiB too small for kernel (up to 20 MiB) + initrd (8 MiB): use --mem 48 or more\n',
    });
  });

  it('a config file with invalid JSON', async () => {
    const w = workdir();
    const config = w.file('vm.json', '{ "mem": "1G", }');
    const result = await runHype(['run', '--config', config]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`^hype: ${config}: invalid JSON: .+ at line 1, column 16\\n$`));
  });

  it('a config file with a bad value', async () => {
    const w = workdir();
    const config = w.file('vm.json', JSON.stringify({ kernel: 'vmlinux', cpus: 12 }));
    const result = await runHype(['run', '--config', config]);
    expect(result).toMatchObject({ code: 2, stderr: `hype: ${config}: cpus 12: the number of vCPUs must be a whole number from 1 to 8\n` });
  });

  it('no KVM device: says this host has no KVM', async () => {
    const w = workdir();
    const kernel = w.file('vmlinux', elfKernel());
    const result = await runHype(['run', '--kernel', kernel, '--accel', 'kvm'], { env: NO_KVM });
    expect(result).toMatchObject({
      code: 2,
      stdout: '',
      stderr:
        'hype: /nonexistent/kvm not found: this host has no KVM; load the kvm_intel or kvm_amd module, enable ' +
        'virtualization in the firmware, or on a cloud VM enable nested virtualization\n',
    });
  });

  it('a KVM device without permission: says to join the kvm group', async () => {
    // Root may open anything, so as root the binary runs as `nobody` (uid 65534); otherwise mode 000 denies us.
    const asRoot = process.getuid?.() === 0;
    const w = workdir();
    chmodSync(w.dir, 0o755);
    const kernel = w.file('vmlinux', elfKernel());
    chmodSync(kernel, 0o644);
    const deviceDir = join(w.dir, 'dev');
    mkdirSync(deviceDir, { mode: 0o755 });
    const device = join(deviceDir, 'kvm');
    writeFileSync(device, '');
    chmodSync(device, asRoot ? 0o600 : 0o000);
    const env = { ...process.env, HYPE_KVM_DEVICE: device, HOME: w.dir };
    const result = await runHype(['run', '--kernel', kernel, '--accel', 'kvm'], { env, cwd: w.dir, ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
    expect(result).toMatchObject({
      code: 2,
      stderr: `hype: ${device}: permission denied; add your user to the kvm group: sudo usermod -aG kvm $USER (then log in again)\n`,
    });
  });
});
