/**
 * A guest nobody here built: Debian's stock kernel (the package the nested rig boots as L1, fetched once
 * with apt-get download) with a busybox initramfs that loads Debian's own virtio modules. It finds its
 * devices through hype's ACPI tables only (Debian builds virtio_mmio without VIRTIO_MMIO_CMDLINE_DEVICES),
 * gets an address by DHCP through Debian's virtio_net and passt (`--net user`), and powers off through
 * the ACPI sleep register. One boot runs every check; a second ends in a reboot.
 *
 * Runs on real KVM where there is one; on a kvm_pvm host (whose instruction emulator takes many minutes
 * for a distribution kernel) or without /dev/kvm, under the nested rig (`--accel nested`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeNewc, type CpioEntry } from '@hype/guest';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuiltBin, REPO_ROOT, runHype } from './bin-process.js';
import { MiB, workdir } from './helpers.js';

const insideRig = existsSync('/run/kvm-in-qemu');
const hasQemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;
const realKvm = existsSync('/dev/kvm') && !existsSync('/sys/module/kvm_pvm');
const accel = realKvm ? 'kvm' : 'nested';
const runnable = realKvm || (hasQemu && !insideRig);
if (!runnable) console.warn('[hype] neither real KVM nor QEMU for the nested rig: skipping apps/cli/test/e2e-stock-kernel.test.ts');

const MODULES = [
  'drivers/virtio/virtio_ring.ko',
  'drivers/virtio/virtio.ko',
  'drivers/virtio/virtio_mmio.ko',
  'drivers/block/virtio_blk.ko',
  'drivers/char/virtio_console.ko',
  'net/core/failover.ko',
  'drivers/net/net_failover.ko',
  'drivers/net/virtio_net.ko',
];
const BUSYBOX = '/bin/busybox';

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_mmio virtio_blk virtio_console failover net_failover virtio_net; do insmod /modules/$m.ko || echo "STOCK: insmod $m failed"; done
for i in $(seq 1 50); do [ -b /dev/vdb ] && [ -c /dev/hvc0 ] && [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done
exec >/dev/hvc0 2>&1
echo "STOCK: nproc=$(nproc) vda=$(cat /sys/block/vda/size) vdb=$(cat /sys/block/vdb/size) vdb-ro=$(cat /sys/block/vdb/ro)"
printf stock-kernel-wrote-this | dd of=/dev/vda bs=512 conv=sync 2>/dev/null; sync
echo 3 >/proc/sys/vm/drop_caches
echo "STOCK: vda=$(head -c 23 /dev/vda) vdb=$(head -c 14 /dev/vdb)"
ip link set lo up; ip link set eth0 up
udhcpc -i eth0 -n -q -t 5 -T 1 -s /bin/dhcp-script >/dev/null 2>&1
echo "STOCK: eth0 $(cat /sys/class/net/eth0/address) $(ip -4 -o addr show dev eth0 | awk '{print $4}') via $(ip route | awk '/^default/ {print $3}')"
echo "STOCK: acpi-errors=$(dmesg | grep -c -i -E 'ACPI (BIOS )?(Error|Warning)|ACPI Exception')"
echo "STOCK: ends with $(cat /proc/cmdline | sed -n 's/.*stock.end=\\([a-z]*\\).*/\\1/p')"
case "$(cat /proc/cmdline)" in *stock.end=reboot*) reboot -f ;; *) poweroff -f ;; esac
`;

/** udhcpc's hook: applies the lease (the stock initramfs has no distribution scripts). */
const DHCP_SCRIPT = `#!/bin/busybox sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
ip route add default via "\${router%% *}" dev "$interface"
`;

function debianKernelDir(): string {
  const r = spawnSync('bash', [join(REPO_ROOT, 'scripts/kvm-in-qemu.sh'), 'true'], {
    env: { ...process.env, KVM_IN_QEMU_KERNEL_DIR_ONLY: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`fetching Debian's kernel failed:\n${r.stderr}`);
  return r.stdout.trim();
}

function stockInitrd(kernelDir: string): Uint8Array {
  const release = readdirSync(join(kernelDir, 'lib/modules'))[0]!;
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'modules'].map((path): CpioEntry => ({ type: 'dir', path, mode: 0o755 })),
    { type: 'file', path: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 },
    { type: 'file', path: 'init', data: INIT, mode: 0o755 },
    { type: 'file', path: 'bin/dhcp-script', data: DHCP_SCRIPT, mode: 0o755 },
    ...MODULES.map((m): CpioEntry => ({
      type: 'file',
      path: `modules/${m.split('/').pop()}`,
      data: readFileSync(join(kernelDir, 'lib/modules', release, 'kernel', m)),
      mode: 0o644,
    })),
  ];
  return encodeNewc(entries);
}

describe.skipIf(!runnable)(`Debian's stock kernel on hype (--accel ${accel})`, () => {
  let kernel: string;
  let initrd: string;
  let dir: string;

  beforeAll(async () => {
    await ensureBuiltBin();
    const kernelDir = debianKernelDir();
    kernel = join(kernelDir, 'boot', readdirSync(join(kernelDir, 'boot')).find((f) => f.startsWith('vmlinuz-'))!);
    dir = workdir().dir;
    initrd = join(dir, 'stock-initrd.cpio');
    writeFileSync(initrd, stockInitrd(kernelDir));
  }, 900_000);

  const boot = (end: 'poweroff' | 'reboot', disk: string, seed: string) =>
    runHype(
      ['run', '--accel', accel, '--kernel', kernel, '--initrd', initrd, '--cpus', '2', '--mem', '512M',
        '--disk', disk, '--disk', `${seed},ro`, '--net', 'user,mac=52:54:00:5e:00:01', '--cmdline', `stock.end=${end}`],
      { timeout: 900_000 },
    );

  it('finds its disks and console through ACPI, SMP through the MADT, and poweroff -f ends hype with exit 0', async () => {
    const disk = join(dir, 'vda.img');
    const seed = join(dir, 'vdb.img');
    writeFileSync(disk, Buffer.alloc(4 * MiB));
    const seedBytes = Buffer.alloc(MiB);
    seedBytes.write('read-only-seed', 'latin1');
    writeFileSync(seed, seedBytes);
    const r = await boot('poweroff', disk, seed);
    const out = r.stdout.replace(/\r/g, '');
    expect(out, `stdout:\n${out}\nstderr:\n${r.stderr}`).toContain(`STOCK: nproc=2 vda=${(4 * MiB) / 512} vdb=${MiB / 512} vdb-ro=1`);
    expect(out).toContain('STOCK: vda=stock-kernel-wrote-this vdb=read-only-seed');
    // Debian's virtio_net driver, passt's DHCP (nested: the rig's passt; the MAC from --net user,mac=).
    expect(out).toContain('STOCK: eth0 52:54:00:5e:00:01 10.0.2.15/24 via 10.0.2.2');
    expect(out).toContain('STOCK: acpi-errors=0');
    expect(out).not.toContain('insmod');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(disk).subarray(0, 23).toString('latin1')).toBe('stock-kernel-wrote-this');
  }, 900_000);

  it('reboot -f ends hype with the reboot exit code (3)', async () => {
    const disk = join(dir, 'vda2.img');
    writeFileSync(disk, Buffer.alloc(MiB));
    const seed = join(dir, 'vdb2.img');
    writeFileSync(seed, Buffer.alloc(MiB));
    const r = await boot('reboot', disk, seed);
    expect(r.stdout).toContain('STOCK: ends with reboot');
    expect(r.code, r.stderr).toBe(3);
  }, 900_000);
});
