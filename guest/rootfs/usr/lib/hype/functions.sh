# Shell helpers shared by hype's /init, the poweroff wrapper and the test runner (busybox ash).

# hype debug ports (see guest/README.md): a one-byte write to 0xf4 powers the VM off with that exit
# status; a one-byte write to 0xf5 is a boot/progress marker the VMM timestamps.
HYPE_PORT_POWEROFF=244
HYPE_PORT_MARKER=245

# hype_outb PORT VALUE: write one byte to an I/O port through /dev/port.
hype_outb() {
	[ -c /dev/port ] || return 1
	case "$2" in '' | *[!0-9]*) return 2 ;; esac
	[ "$2" -le 255 ] || return 2
	printf "\\$(printf %03o "$2")" | dd of=/dev/port bs=1 seek="$1" count=1 conv=notrunc 2>/dev/null
}

# hype_marker VALUE: boot/progress marker (1 = /init started).
hype_marker() {
	hype_outb "$HYPE_PORT_MARKER" "$1"
}

# hype_cmdline_value KEY: print the value of KEY=VALUE from the kernel command line (status 1 if absent).
hype_cmdline_value() {
	for word in $(cat /proc/cmdline); do
		case "$word" in "$1="*)
			echo "${word#*=}"
			return 0
			;;
		esac
	done
	return 1
}

hype_mount_basics() {
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	# The kernel does not mount devtmpfs on an initramfs root by itself (DEVTMPFS_MOUNT applies to
	# real root file systems only).
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts
	mount -t devpts devpts /dev/pts
	mount -t tmpfs tmpfs /tmp
	mount -t tmpfs tmpfs /run
}

# hype_attach_console: make sure stdin/stdout/stderr are the console. The kernel starts init without
# them when no console exists yet ("Warning: unable to open an initial console"), which happens when
# the console is a multiport virtio console (e.g. QEMU's virtio-serial): its hvc0 appears a little
# later, from a work queue. Waits up to 10 s for /dev/console to open.
hype_attach_console() {
	[ -t 1 ] && return 0
	tries=0
	until (: <>/dev/console) 2>/dev/null; do
		tries=$((tries + 1))
		[ $tries -lt 100 ] || return 1
		usleep 100000
	done
	exec 0<>/dev/console 1>&0 2>&0
}

# hype_start_agent: the guest agent (/usr/sbin/hype-agent, guest/agent/PROTOCOL.md) in the background, when
# the kernel has vsock (/dev/vsock) and the initrd carries the agent. It listens on vsock port 1024 and
# prints nothing unless it fails (then one line on the console). Without /dev/vsock: nothing to do.
hype_start_agent() {
	[ -c /dev/vsock ] && [ -x /usr/sbin/hype-agent ] || return 0
	/usr/sbin/hype-agent </dev/null &
}

# hype_start_network: loopback up, then every Ethernet interface (virtio-net: eth0, eth1, ...) up and
# configured by DHCP (busybox udhcpc with /etc/udhcpc/default.script), all at once. Each client
# asks 3 times a second apart, then goes on in the background, so a network without a DHCP server (a
# TAP device) delays the boot by 3 s; `hype.dhcp=off` on the kernel command line skips DHCP (the
# interfaces still come up, for static addresses). udhcpc's own chatter is dropped (a client retrying
# forever would fill /run); the hook script prints one console line per lease or first failure.
hype_start_network() {
	[ -d /sys/class/net ] || return 0
	ip link set lo up 2>/dev/null
	# A receive window of at most 256 KiB (Linux would allow MiBs): passt resends everything unacknowledged
	# after 2 s, so a slow guest with MiBs in flight gets them again and again (measured under emulation:
	# a 16 MiB download from 10 s to minutes). 256 KiB still covers a fast link at a VM's round trip.
	echo "4096 131072 262144" >/proc/sys/net/ipv4/tcp_rmem 2>/dev/null
	dhcp=$(hype_cmdline_value hype.dhcp) || dhcp=on
	for path in /sys/class/net/*; do
		iface=${path##*/}
		# ARPHRD_ETHER (1): skip lo and anything that is not an Ethernet device.
		[ "$(cat "$path/type" 2>/dev/null)" = 1 ] || continue
		ip link set "$iface" up
		[ "$dhcp" = off ] && continue
		udhcpc -i "$iface" -s /etc/udhcpc/default.script -b -t 3 -T 1 -A 5 -p "/run/udhcpc.$iface.pid" >/dev/null 2>&1 &
	done
	wait
}

hype_banner() {
	echo
	echo "hype guest: Linux $(uname -r) $(uname -m), $(nproc) CPU(s), $(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB"
	echo "Leave with 'poweroff' (or exit the shell)."
	echo
}
