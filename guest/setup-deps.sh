#!/bin/sh
# Installs what building hype's guest (kernel + initrd) and its tests need, from Debian packages.
# Idempotent: returns at once when everything is already installed.
set -eu

PACKAGES="linux-source bc bison flex libelf-dev libssl-dev busybox-static e2fsprogs cpio xz-utils build-essential"

missing=
for pkg in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $pkg"
	fi
done

if [ -z "$missing" ]; then
	echo "guest build dependencies: all installed"
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "guest build dependencies: installing$missing"
$SUDO apt-get update
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
