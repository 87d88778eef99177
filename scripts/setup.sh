#!/usr/bin/env bash
# One-time setup on a Debian/Ubuntu machine: system packages for the guest build, pnpm at the pinned
# version, the workspace dependencies (which builds the KVM addon from source when no prebuild fits),
# and the TypeScript packages.
set -euo pipefail
cd "$(dirname "$0")/.."

sh guest/setup-deps.sh

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "setup: installing pnpm $pnpm_version"
  if [ "$(id -u)" -eq 0 ]; then npm install -g "pnpm@$pnpm_version"; else sudo npm install -g "pnpm@$pnpm_version"; fi
fi

pnpm install --frozen-lockfile
pnpm build
