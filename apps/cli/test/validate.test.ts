import { constants } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkKvmDevice, kvmDevicePath } from '../src/kvm-device.js';
import { nodeFs } from '../src/host-fs.js';
import { checkInputs } from '../src/validate.js';
import { fsDenying, MiB, subdir, workdir } from './helpers.js';

const { R_OK, W_OK } = constants;

describe('checkInputs', () => {
  it('accepts a readable kernel, initrd and disks and returns the kernel image and initrd size', async () => {
    const w = workdir();
    const kernel = w.file('bzImage', 'any bytes: the boot check judges them');
    const initrd = w.file('initrd.cpio', new Uint8Array(3 * MiB));
    const disk = w.file('disk.img', new Uint8Array(1024));
    const result = await checkInputs(
      { kernel, initrd, disks: [{ kind: 'file', path: disk }, { kind: 'memory', sizeBytes: MiB }, { kind: 'http', url: 'https://h/x' }] },
      {},
      nodeFs,
    );
    expect(result.errors).toEqual([]);
    expect(Buffer.from(result.kernelImage as Uint8Array).toString()).toBe('any bytes: the boot check judges them');
    expect(result.initrdBytes).toBe(3 * MiB);
  });

  it('reports every problem, each naming the flag and the file', async () => {
    const w = workdir();
    const dir = subdir(w.dir, 'adir');
    const empty = w.file('empty', '');
    const result = await checkInputs(
      {
        initrd: `${w.dir}/missing.cpio`,
        disks: [
          { kind: 'file', path: `${w.dir}/missing.img` },
          { kind: 'file', path: dir },
          { kind: 'file', path: empty },
        ],
      },
      { kernel: '--kernel', initrd: '--initrd', disks: ['--disk', '--disk', 'vm.json: disks[2]'] },
      nodeFs,
    );
    expect(result.errors).toEqual([
      `--initrd ${w.dir}/missing.cpio: no such file`,
      `--disk ${w.dir}/missing.img: no such file; create it first (e.g. truncate -s 1G ${w.dir}/missing.img) or use --disk mem:SIZE`,
      `--disk ${dir}: is a directory; a disk is a raw image file`,
      `vm.json: disks[2] ${empty}: the image is empty (0 bytes); give it a size, e.g. truncate -s 1G ${empty}`,
    ]);
  });

  it.each([
    ['missing kernel', (w: ReturnType<typeof workdir>) => ({ kernel: `${w.dir}/nope` }), (w: ReturnType<typeof workdir>) => `--kernel ${w.dir}/nope: no such file`],
    ['kernel is a directory', (w: ReturnType<typeof workdir>) => ({ kernel: w.dir }), (w: ReturnType<typeof workdir>) => `--kernel ${w.dir}: is a directory, not a file`],
    ['empty kernel', (w: ReturnType<typeof workdir>) => ({ kernel: w.file('k0', '') }), (w: ReturnType<typeof workdir>) => `--kernel ${w.dir}/k0: the file is empty, not a kernel`],
    ['kernel under a file', (w: ReturnType<typeof workdir>) => ({ kernel: `${w.file('f', 'x')}/k` }), (w: ReturnType<typeof workdir>) => `--kernel ${w.dir}/f/k: no such file (a parent is not a directory)`],
    ['kernel is /dev/null', () => ({ kernel: '/dev/null' }), () => '--kernel /dev/null: not a regular file'],
    ['empty initrd', (w: ReturnType<typeof workdir>) => ({ initrd: w.file('i0', '') }), (w: ReturnType<typeof workdir>) => `--initrd ${w.dir}/i0: the file is empty, not an initramfs`],
    ['initrd is a directory', (w: ReturnType<typeof workdir>) => ({ initrd: w.dir }), (w: ReturnType<typeof workdir>) => `--initrd ${w.dir}: is a directory, not a file`],
    ['disk is a char device', () => ({ disks: [{ kind: 'file' as const, path: '/dev/null' }] }), () => '--disk /dev/null: not a regular file or block device'],
  ])('%s', async (_name, options, message) => {
    const w = workdir();
    const result = await checkInputs(options(w), {}, nodeFs);
    expect(result.errors).toEqual([message(w)]);
  });

  it('unreadable kernel, initrd and disk, and a disk that cannot be written', async () => {
    const w = workdir();
    const kernel = w.kernel();
    const initrd = w.file('initrd', 'x');
    const disk = w.file('ro.img', new Uint8Array(512));
    const disk2 = w.file('noread.img', new Uint8Array(512));
    const fs = fsDenying({ [kernel]: R_OK, [initrd]: R_OK, [disk]: W_OK, [disk2]: R_OK });
    const result = await checkInputs(
      { kernel, initrd, disks: [{ kind: 'file', path: disk }, { kind: 'file', path: disk2, readOnly: true }] },
      {},
      fs,
    );
    expect(result.errors).toEqual([
      `--kernel ${kernel}: cannot read it: permission denied`,
      `--initrd ${initrd}: cannot read it: permission denied`,
      `--disk ${disk}: cannot write it (permission denied); attach it read-only with ${disk},ro`,
      `--disk ${disk2}: cannot read it: permission denied`,
    ]);
  });

  it('a read-only disk needs only read permission', async () => {
    const w = workdir();
    const disk = w.file('ro.img', new Uint8Array(512));
    const result = await checkInputs({ disks: [{ kind: 'file', path: disk, readOnly: true }] }, {}, fsDenying({ [disk]: W_OK }));
    expect(result.errors).toEqual([]);
  });

  it('warns when a disk is not a whole number of sectors', async () => {
    const w = workdir();
    const disk = w.file('odd.img', new Uint8Array(1000));
    const warnings: string[] = [];
    const result = await checkInputs({ disks: [{ kind: 'file', path: disk }] }, {}, nodeFs, warnings);
    expect(result.errors).toEqual([]);
    expect(warnings).toEqual([`--disk ${disk}: 1000 bytes is not a multiple of 512; the guest sees only whole sectors`]);
  });
});

describe('KVM device check', () => {
  it('HYPE_KVM_DEVICE overrides /dev/kvm', () => {
    expect(kvmDevicePath({})).toBe('/dev/kvm');
    expect(kvmDevicePath({ HYPE_KVM_DEVICE: '' })).toBe('/dev/kvm');
    expect(kvmDevicePath({ HYPE_KVM_DEVICE: '/tmp/kvm' })).toBe('/tmp/kvm');
  });

  it('a missing device: no KVM on this host', async () => {
    expect(await checkKvmDevice('/nonexistent/kvm', nodeFs)).toBe(
      '/nonexistent/kvm not found: this host has no KVM; load the kvm_intel or kvm_amd module, enable virtualization ' +
        'in the firmware, or on a cloud VM enable nested virtualization',
    );
  });

  it('a device we may not open: join the kvm group', async () => {
    const w = workdir();
    const device = w.file('kvm', '');
    expect(await checkKvmDevice(device, fsDenying({ [device]: R_OK | W_OK }))).toBe(
      `${device}: permission denied; add your user to the kvm group: sudo usermod -aG kvm $USER (then log in again)`,
    );
  });

  it('an accessible device passes', async () => {
    const w = workdir();
    expect(await checkKvmDevice(w.file('kvm', ''), nodeFs)).toBeUndefined();
  });
});
