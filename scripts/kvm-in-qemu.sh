#!/usr/bin/env bash
# The nested rig ships with the CLI (it is what `hype run --accel nested` uses); see
# apps/cli/rig/kvm-in-qemu.sh and scripts/README.md.
exec bash "$(dirname "$0")/../apps/cli/rig/kvm-in-qemu.sh" "$@"
