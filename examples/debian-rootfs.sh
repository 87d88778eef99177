#!/usr/bin/env bash
# Debian 12 on hype, as a distribution would boot it: debootstrap a small root file system (systemd,
# Debian's own kernel and initramfs) into an ext4 image, then boot that kernel and initramfs with the
# image as /dev/vda, to a login prompt on the serial console (user root, no password).
#
#   bash examples/debian-rootfs.sh [DIR]       # DIR defaults to <hype cache>/examples/debian
#
# The hype cache is $HYPE_CACHE_DIR, else $XDG_CACHE_HOME/hype, else ~/.cache/hype (as for the guest kernel).
#
# Needs root (debootstrap), debootstrap and e2fsprogs (installed when missing), and network access to
# Debian's mirror. hype's ACPI tables are what let Debian's kernel find the virtio disk (its virtio_mmio
# is built without command-line devices). Leave the guest with `poweroff` (ACPI: hype exits 0) or Ctrl-A x.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${HYPE_CACHE_DIR:-}" ]; then cache=$HYPE_CACHE_DIR
elif [[ "${XDG_CACHE_HOME:-}" == /* ]]; then cache=$XDG_CACHE_HOME/hype
else cache=$HOME/.cache/hype; fi
dir=${1:-$cache/examples/debian}
root=$dir/root
image=$dir/debian.img
[ "$(id -u)" -eq 0 ] || { echo "debian-rootfs: debootstrap needs root (run with sudo)" >&2; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }

if [ ! -e "$root/.done" ]; then
  echo "debian-rootfs: debootstrap into $root (a few minutes, once)" >&2
  rm -rf "$root"
  mkdir -p "$root"
  debootstrap --variant=minbase --include=systemd-sysv,udev,kmod,linux-image-amd64,initramfs-tools,iproute2,procps \
    bookworm "$root" http://deb.debian.org/debian >"$dir/debootstrap.log" 2>&1 ||
    { tail -n 20 "$dir/debootstrap.log" >&2; exit 1; }
  # Debian's initramfs must carry the virtio-mmio drivers to find the root disk.
  printf '%s\n' virtio_mmio virtio_blk virtio_console >>"$root/etc/initramfs-tools/modules"
  chroot "$root" update-initramfs -u -k all >/dev/null
  chroot "$root" passwd -d root >/dev/null
  echo hype-debian >"$root/etc/hostname"
  printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
  touch "$root/.done"
fi
if [ ! -e "$image" ] || [ "$root/.done" -nt "$image" ]; then
  echo "debian-rootfs: writing $image" >&2
  rm -f "$image"
  mke2fs -q -t ext4 -L debian -d "$root" "$image" 2G
fi
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
exec node apps/cli/dist/bin.js run --kernel "$kernel" --initrd "$initrd" --disk "$image" --mem 1G --cpus 2 \
  --console serial --cmdline "root=/dev/vda rw" "${@:2}"
