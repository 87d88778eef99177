#!/usr/bin/env bash
# Run a command inside a QEMU/TCG virtual machine that has a working /dev/kvm.
#
#   scripts/kvm-in-qemu.sh <command...>
#
# A development aid for hosts without KVM (slow: every instruction is emulated). QEMU emulates an AMD
# CPU with SVM (`-cpu max`), boots a stock Debian kernel ("L1") that loads kvm_amd, and runs the command
# there, in this machine's own root file system: shared read-only over 9p, with a tmpfs overlay on top
# so that everything (/tmp included) is writable; those writes are thrown away when L1 stops. The
# command runs as root, in the current directory, with the current environment; its output comes back
# over L1's serial line (stdout and stderr merged). The exit status is the command's; 125 means the rig
# itself failed.
#
# Environment:
#   KVM_IN_QEMU_MEM      L1 memory (default 4G)
#   KVM_IN_QEMU_CPUS     L1 vCPUs (default 2)
#   KVM_IN_QEMU_VERBOSE  1: show L1 kernel messages and the rig's own progress lines
#   KVM_IN_QEMU_KERNEL   Debian kernel package to boot (default: what linux-image-amd64 depends on)
#   KVM_IN_QEMU_KERNEL_DIR_ONLY  1: print the directory the Debian kernel package is extracted to, and exit
#   KVM_IN_QEMU_RW       colon-separated host directories to share read-write (writes land on this
#                        host, e.g. a results directory); everything else is the throw-away overlay
#   HYPE_CACHE_DIR       cache root (default $XDG_CACHE_HOME/hype, else ~/.cache/hype, as @hype/guest's
#                        hypeCacheDir()); the rig uses <root>/kvm-in-qemu
#
# On a terminal, Ctrl-C goes to the command; Ctrl-] x quits QEMU (Ctrl-] is QEMU's escape here, so
# that Ctrl-A reaches `hype run` inside).
#
# Downloads nothing but the Debian kernel package (`apt-get download`, once; cached).
# needs: apt-get apt-cache dpkg-deb depmod modprobe cpio gzip flock file sha256sum setsid
set -euo pipefail

die() { echo "kvm-in-qemu: $*" >&2; exit 125; }
[ $# -gt 0 ] || die "usage: scripts/kvm-in-qemu.sh <command...>"
QEMU="${KVM_IN_QEMU_QEMU:-qemu-system-x86_64}"
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86, or bash scripts/setup.sh)"

# The same cache root as hypeCacheDir() in @hype/guest (a relative XDG_CACHE_HOME is ignored, per the spec).
if [ -n "${HYPE_CACHE_DIR:-}" ]; then
  CACHE_ROOT=$HYPE_CACHE_DIR
elif [[ "${XDG_CACHE_HOME:-}" == /* ]]; then
  CACHE_ROOT=$XDG_CACHE_HOME/hype
else
  CACHE_ROOT=$HOME/.cache/hype
fi
CACHE="$CACHE_ROOT/kvm-in-qemu"
MEM="${KVM_IN_QEMU_MEM:-4G}"
CPUS="${KVM_IN_QEMU_CPUS:-2}"
VERBOSE="${KVM_IN_QEMU_VERBOSE:-0}"
mkdir -p "$CACHE"
# One run at a time prepares the kernel and initramfs; the runs themselves are independent.
exec 9>"$CACHE/.lock"
flock 9
say() { [ "$VERBOSE" = 1 ] && echo "kvm-in-qemu: $*" >&2 || true; }
ATTEMPTS="${KVM_IN_QEMU_ATTEMPTS:-3}"
STALL_S="${KVM_IN_QEMU_STALL_S:-45}"
BOOT_S="${KVM_IN_QEMU_BOOT_S:-180}"
for v in ATTEMPTS STALL_S BOOT_S; do
  case "${!v}" in ''|*[!0-9]*|0) die "KVM_IN_QEMU_$v=${!v}: use a positive whole number" ;; esac
done

# --- initramfs: busybox, the modules in load order, /init ----------------------------------------
read -r -d '' INIT <<'EOF' || true
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
verbose=0; grep -q 'kvm_in_qemu.verbose=1' /proc/cmdline && verbose=1
log() { [ $verbose = 1 ] && echo "kvm-in-qemu(L1 $(cut -d' ' -f1 /proc/uptime)s): $*"; }
fail() { echo "kvm-in-qemu(L1): $*"; echo 125 >/rig/status 2>/dev/null; sync; poweroff -f; }
for m in $(cat /modules.list); do
  insmod "/modules/$m" 2>/tmp/insmod.err || grep -q 'File exists' /tmp/insmod.err ||
    { cat /tmp/insmod.err; [ "$m" = kvm-amd.ko ] && { dmesg | tail -n 20; }; fail "insmod $m failed"; }
done
# A network for tests on L1 (nothing leaves it: L1 has no NIC): loopback, TAP devices (tun), and a dummy
# interface with a default route, without which passt (hype run --net user) refuses to start.
ip link set lo up
{ ip link add hype-ext type dummy && ip addr add 10.200.0.1/24 dev hype-ext && ip link set hype-ext up &&
  ip route add default via 10.200.0.254 dev hype-ext; } || log "no dummy interface: --net user cannot start here"
mkdir -p /rig /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 rig /rig || fail "mount rig share failed"
( n=0; while :; do n=$((n + 1)); echo $n >/rig/heartbeat; sleep 2; done ) </dev/null >/dev/null 2>&1 &
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /lower ||
  fail "mount of the host root (9p) failed"
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot ||
  fail "overlay mount failed"
i=0
for dir in $(sed -n 's/.*kvm_in_qemu.rw=\([^ ]*\).*/\1/p' /proc/cmdline | tr ':' ' '); do
  mkdir -p "/newroot$dir"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 "rw$i" "/newroot$dir" || fail "mount of $dir failed"
  i=$((i + 1))
done
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/run/kvm-in-qemu
mount --bind /rig /newroot/run/kvm-in-qemu
[ -c /newroot/dev/kvm ] || fail "/dev/kvm missing after loading kvm_amd"
log "/dev/kvm ready; $(dmesg | grep -iE 'kvm|svm' | tr '\n' ' ')"
stty -onlcr 2>/dev/null
# A background job of a non-interactive shell is not a process group leader, so setsid runs in place
# and `wait` gets the command's status; cttyhack gives it /dev/ttyS0 as controlling tty (^C works).
# The new root is moved onto / first, as switch_root does, and the command chroots into it: a plain
# chroot into a directory would leave the command "chrooted" for the kernel, which then refuses it user
# namespaces (unshare(CLONE_NEWUSER): EPERM), and passt needs one. This shell keeps the initramfs as its
# root (its root directory is below the moved mount), so it still finds busybox and /rig afterwards.
( cd /newroot && mount --move . / && exec setsid cttyhack chroot . /bin/bash /run/kvm-in-qemu/cmd.sh ) &
wait $!
status=$?
log "command exited with status $status"
echo $status >/rig/status
sync
[ $verbose = 1 ] || echo 0 >/proc/sys/kernel/printk  # not even "reboot: Power down"
poweroff -f
EOF

prepare_l1() {
  export PATH="$PATH:/usr/sbin:/sbin"
  local tool missing=
  for tool in depmod:kmod modprobe:kmod cpio:cpio gzip:gzip file:file dpkg-deb:dpkg apt-get:apt; do
    command -v "${tool%%:*}" >/dev/null || missing="$missing ${tool#*:}"
  done
  [ -z "$missing" ] || die "missing programs; install them with: apt-get install$missing (or bash scripts/setup.sh)"
  # --- L1 kernel: a stock Debian amd64 kernel (has KVM_AMD, 9P, OVERLAY_FS as modules) --------------
  pkg="${KVM_IN_QEMU_KERNEL:-}"
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    # The -unsigned package has the same kernel and modules without the Secure Boot signatures.
    [ -n "$pkg" ] && { apt-cache show "$pkg-unsigned" >/dev/null 2>&1 && pkg="$pkg-unsigned"; }
  fi
  if [ -z "$pkg" ]; then
    # No apt metadata: fall back to a kernel already in the cache.
    pkg=$(ls -1d "$CACHE"/linux-image-*/ 2>/dev/null | tail -n1 | xargs -r basename)
    [ -n "$pkg" ] || die "cannot find a Debian kernel package (apt-get update?) and none is cached in $CACHE"
  fi
  KDIR="$CACHE/$pkg"
  if [ ! -e "$KDIR/.extracted" ]; then
    say "downloading $pkg"
    dl=$(mktemp -d "$CACHE/.dl.XXXXXX")
    echo "kvm-in-qemu: downloading the L1 kernel $pkg (once; cached in $CACHE)" >&2
    (cd "$dl" && apt-get download -qq "$pkg" >"$dl.log" 2>&1) || { cat "$dl.log" >&2; rm -rf "$dl" "$dl.log"; die "apt-get download $pkg failed"; }
    rm -f "$dl.log"
    rm -rf "$KDIR"
    mkdir -p "$KDIR"
    dpkg-deb -x "$dl"/*.deb "$KDIR"
    rm -rf "$dl"
    touch "$KDIR/.extracted"
  fi
  KVER=$(ls -1 "$KDIR/lib/modules" | head -n1)
  VMLINUZ="$KDIR/boot/vmlinuz-$KVER"
  [ -f "$VMLINUZ" ] || die "$VMLINUZ missing (remove $KDIR and retry)"
  grep -q '^CONFIG_KVM_AMD=[ym]' "$KDIR/boot/config-$KVER" || die "$pkg has no CONFIG_KVM_AMD"
  grep -q '^CONFIG_NET_9P_VIRTIO=[ym]' "$KDIR/boot/config-$KVER" || die "$pkg has no 9p over virtio"


  BUSYBOX=$(command -v busybox || true)
  [ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
    die "a static busybox is needed (apt-get install busybox-static)"
  # Rebuild when the kernel or this script changes.
  stamp=$(printf '%s\n%s\n%s\n' "$KVER" "$INIT" "$(sha256sum "$BUSYBOX")" | sha256sum | cut -c1-16)
  INITRD="$KDIR/initrd-$stamp.cpio.gz"
  if [ ! -f "$INITRD" ]; then
    say "building initramfs $INITRD"
    tree=$(mktemp -d "$CACHE/.initrd.XXXXXX")
    mkdir -p "$tree/bin" "$tree/modules" "$tree/tmp"
    cp "$BUSYBOX" "$tree/bin/busybox"
    printf '%s\n' "$INIT" >"$tree/init"
    chmod +x "$tree/init"
    [ -f "$KDIR/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR" "$KVER"
    : >"$tree/modules.list"
    for mod in virtio_pci 9pnet_virtio 9p overlay kvm_amd tun dummy; do
      modprobe -d "$KDIR" -S "$KVER" --show-depends "$mod" | awk '$1 == "insmod" {print $2}' |
        while read -r ko; do
          name=$(basename "$ko")
          grep -qx "$name" "$tree/modules.list" && continue
          cp "$ko" "$tree/modules/$name"
          echo "$name" >>"$tree/modules.list"
        done
    done
    (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRD.tmp"
    rm -f "$KDIR"/initrd-*.cpio.gz
    mv "$INITRD.tmp" "$INITRD"
    rm -rf "$tree"
  fi

}

if [ -n "${KVM_IN_QEMU_L1_KERNEL:-}" ] || [ -n "${KVM_IN_QEMU_L1_INITRD:-}" ]; then
  # Another L1 (tests of the rig use a fake QEMU with these); both must be given.
  VMLINUZ="${KVM_IN_QEMU_L1_KERNEL:?KVM_IN_QEMU_L1_INITRD needs KVM_IN_QEMU_L1_KERNEL}"
  INITRD="${KVM_IN_QEMU_L1_INITRD:?KVM_IN_QEMU_L1_KERNEL needs KVM_IN_QEMU_L1_INITRD}"
  KVER=custom
else
  prepare_l1
  # KVM_IN_QEMU_KERNEL_DIR_ONLY=1: print where the Debian kernel package is extracted (downloading it
  # once), and stop; guest tests boot the same stock kernel on hype.
  if [ "${KVM_IN_QEMU_KERNEL_DIR_ONLY:-0}" = 1 ]; then echo "$KDIR"; exit 0; fi
fi
exec 9>&-

# --- the run: the command, its directory and environment go through a small writable 9p share ----
RIG=$(mktemp -d "${TMPDIR:-/tmp}/kvm-in-qemu.XXXXXX")
trap 'rm -rf "$RIG"' EXIT
in_tty=0; [ -t 0 ] && in_tty=1
out_tty=0; [ -t 1 ] && out_tty=1
size=$(stty size 2>/dev/null || true)
{
  echo '# generated by scripts/kvm-in-qemu.sh'
  export -p | grep -vE '^declare -x (PWD|OLDPWD|SHLVL|_|TERM_PROGRAM[A-Z_]*|SSH_[A-Z_]+)(=|$)' || true
  printf 'cd %q || exit 125\n' "$PWD"
  # The command's stdin and stdout are L1's serial tty; where they are not terminals here, they are
  # not terminals in L1 either (so tools pick plain output and do not wait for input).
  [ $in_tty = 1 ] || printf 'exec </dev/null\n'
  if [ $out_tty = 1 ]; then
    [ -n "$size" ] && [ "$size" != "0 0" ] && printf 'stty rows %s cols %s 2>/dev/null\n' ${size% *} ${size#* }
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
  else
    printf 'set -o pipefail\n'
    printf '%q ' "$@"
    printf '2>&1 | cat\n'
  fi
} >"$RIG/cmd.sh"

# tsc=reliable: L1 otherwise finds TCG's TSC "unsynchronized" and falls back to the HPET, which makes each
# clock read in L1 a system call plus an emulated device access (process.hrtime.bigint() took 2.3 µs, 0.9
# µs with the TSC through the vDSO); TCG derives every vCPU's TSC from one host clock, so it is in sync.
append="console=ttyS0 panic=-1 softlockup_panic=1 tsc=reliable kvm_in_qemu.verbose=$VERBOSE"
rw_args=()
if [ -n "${KVM_IN_QEMU_RW:-}" ]; then
  IFS=: read -r -a rw_dirs <<<"$KVM_IN_QEMU_RW"
  rw_list=
  for i in "${!rw_dirs[@]}"; do
    dir=$(realpath -e "${rw_dirs[$i]}" 2>/dev/null) && [ -d "$dir" ] ||
      die "KVM_IN_QEMU_RW: ${rw_dirs[$i]} is not a directory"
    case "$dir" in *[[:space:],:]*) die "KVM_IN_QEMU_RW: $dir: spaces, commas and colons are not supported" ;; esac
    rw_args+=(-fsdev "local,id=rw$i,path=$dir,security_model=none" -device "virtio-9p-pci,fsdev=rw$i,mount_tag=rw$i")
    rw_list="$rw_list${rw_list:+:}$dir"
  done
  append="$append kvm_in_qemu.rw=$rw_list"
fi
[ "$VERBOSE" = 1 ] || append="$append quiet loglevel=3"
say "booting L1 ($KVER, $CPUS vCPUs, $MEM)"
[ $in_tty = 1 ] || exec </dev/null

# A stalled L1 is found in seconds and replaced by a fresh one: L1 writes a heartbeat into the rig share
# every 2 s (and panics on a soft lockup, so it stops at once); a watcher here kills QEMU when no
# heartbeat came for STALL_S seconds (BOOT_S before the first). The command runs again from the start
# in the fresh L1, up to ATTEMPTS times.
watch_l1() {
  local started=$SECONDS pid age limit
  while [ ! -s "$RIG/qemu.pid" ]; do
    [ $((SECONDS - started)) -lt 30 ] || return 0
    sleep 0.2
  done
  pid=$(cat "$RIG/qemu.pid")
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if [ -e "$RIG/heartbeat" ]; then
      age=$(($(date +%s) - $(stat -c %Y "$RIG/heartbeat"))) limit=$STALL_S
    else
      age=$((SECONDS - started)) limit=$BOOT_S
    fi
    if [ "$age" -ge "$limit" ]; then
      echo "$age" >"$RIG/stalled"
      kill "$pid" 2>/dev/null
      sleep 3
      kill -9 "$pid" 2>/dev/null
      return 0
    fi
  done
}

interrupted=0
trap 'interrupted=1' INT TERM HUP
for attempt in $(seq 1 "$ATTEMPTS"); do
  rm -f "$RIG/status" "$RIG/heartbeat" "$RIG/stalled" "$RIG/qemu.pid"
  watch_l1 &
  watcher=$!
  set +e
  "$QEMU" \
    -machine q35,accel=tcg -cpu max -smp "$CPUS" -m "$MEM" \
    -kernel "$VMLINUZ" -initrd "$INITRD" -append "$append" \
    -display none -no-reboot -nodefaults -serial mon:stdio -echr 0x1d -pidfile "$RIG/qemu.pid" \
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=rig,path="$RIG",security_model=none \
    -device virtio-9p-pci,fsdev=rig,mount_tag=rig \
    "${rw_args[@]}"
  qemu_status=$?
  set -e
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  [ "$interrupted" = 0 ] || die "interrupted"
  [ -f "$RIG/status" ] && exit "$(cat "$RIG/status")"
  if [ -f "$RIG/stalled" ]; then
    reason="L1 stalled (no heartbeat for $(cat "$RIG/stalled") s)"
  elif [ "$qemu_status" -ne 0 ]; then
    die "$QEMU exited with status $qemu_status"
  else
    reason="L1 stopped without reporting the command's status (an L1 kernel panic, e.g. a soft lockup)"
  fi
  if [ "$attempt" -lt "$ATTEMPTS" ]; then
    echo "kvm-in-qemu: attempt $attempt of $ATTEMPTS: $reason; starting a fresh L1" >&2
  else
    die "attempt $attempt of $ATTEMPTS: $reason; giving up"
  fi
done
