#!/usr/bin/env bash
# One-time setup on a Debian/Ubuntu machine: every program hype's commands and tests run (each row of
# scripts/host-commands.tsv: the guest build's tool chain, busybox-static, e2fsprogs, cpio, and for the
# nested rig and the tests qemu-system-x86, kmod and acpica-tools; passt for `hype run --net user`),
# pnpm at the pinned version, the workspace dependencies (which builds the KVM addon from source when
# no prebuild fits), and the TypeScript packages. Afterwards `pnpm hype run` and `pnpm test` need
# nothing else, as in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] || { echo "setup: takes no arguments" >&2; exit 2; }
# Node.js 20+ is the one prerequisite setup cannot install (Debian 12's nodejs is 18).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] || { echo "setup: hype needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none)); install it, then run setup again" >&2; exit 1; }

packages=(linux-source libelf-dev libssl-dev build-essential ca-certificates)
commands=()
while IFS=$'\t' read -r command package _; do
  case "$command" in ''|'#'*) continue ;; esac
  commands+=("$command:$package")
  packages+=("$package")
done <scripts/host-commands.tsv

missing=()
for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: system packages: all installed"
fi

# The nested rig's QEMU: Debian 12's QEMU 7.2 wedged L1 in its emulation of nested SVM (and is about half
# as fast there); bookworm-backports has QEMU 10, with which 20 runs in a row had no stall
# (scripts/README.md). Other releases ship a recent enough QEMU themselves (Debian 13: 10.0).
qemu_major=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p')
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "${qemu_major:-0}" -lt 10 ] && [ "$codename" = bookworm ]; then
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup: adding Debian's bookworm-backports (for QEMU 10, the nested rig's emulator)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | $SUDO tee /etc/apt/sources.list.d/hype-bookworm-backports.sources >/dev/null
  fi
  echo "setup: installing qemu-system-x86 from bookworm-backports (QEMU ${qemu_major:-none} is here)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
fi

# depmod, modprobe and friends live in /sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"
absent=()
for entry in "${commands[@]}"; do
  command -v "${entry%%:*}" >/dev/null || absent+=("${entry%%:*} (package ${entry#*:})")
done
if [ ${#absent[@]} -gt 0 ]; then
  echo "setup: still missing after the install: ${absent[*]}" >&2
  exit 1
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "setup: installing pnpm $pnpm_version"
  if [ "$(id -u)" -eq 0 ]; then npm install -g "pnpm@$pnpm_version"; else sudo npm install -g "pnpm@$pnpm_version"; fi
fi

pnpm install --frozen-lockfile
pnpm build
