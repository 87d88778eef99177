import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';
import { SYSTEM_TEST_FILES } from './scripts/kvm-test-files.mjs';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources, not the built dist/ of sibling packages.
    alias: {
      '@hype/kvm-sys': src('kvm-sys'),
      '@hype/kvm': src('kvm'),
      '@hype/vm': src('vm'),
      // Subpath entries must come before their package's own entry (first match wins).
      '@hype/linux-loader/node': fileURLToPath(new URL('./packages/linux-loader/src/node.ts', import.meta.url)),
      '@hype/linux-loader': src('linux-loader'),
      '@hype/virtio-blk/node': fileURLToPath(new URL('./packages/virtio-blk/node/index.ts', import.meta.url)),
      '@hype/virtio-blk': src('virtio-blk'),
      '@hype/virtio-rng': src('virtio-rng'),
      '@hype/virtio-net/node': fileURLToPath(new URL('./packages/virtio-net/node/index.ts', import.meta.url)),
      '@hype/virtio-net': src('virtio-net'),
      '@hype/virtio-vsock/node': fileURLToPath(new URL('./packages/virtio-vsock/node/index.ts', import.meta.url)),
      '@hype/virtio-vsock': src('virtio-vsock'),
      '@hype/virtio/testing': fileURLToPath(new URL('./packages/virtio/src/testing/index.ts', import.meta.url)),
      '@hype/virtio': src('virtio'),
      '@hype/acpi': src('acpi'),
      '@hype/guest-memory': src('guest-memory'),
      '@hype/guest-agent/node': fileURLToPath(new URL('./packages/guest-agent/node/index.ts', import.meta.url)),
      '@hype/guest-agent': src('guest-agent'),
      '@hype/guest': fileURLToPath(new URL('./guest/src/index.ts', import.meta.url)),
    },
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 900_000,
    pool: 'forks',
    // `vitest run` runs both projects; `vitest run --project unit` (`pnpm test:unit`) the unit tests only.
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/{src,test}/**/*.test.ts', 'apps/*/{src,test}/**/*.test.ts', 'guest/{src,test}/**/*.test.ts', 'bench/test/**/*.test.ts', 'scripts/test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...SYSTEM_TEST_FILES],
        },
      },
      // The tests that boot real guests on KVM or under QEMU (and build the guest kernel for them).
      { extends: true, test: { name: 'system', include: SYSTEM_TEST_FILES } },
    ],
  },
});
