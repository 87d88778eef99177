import { defineConfig } from 'tsup';

export default defineConfig({
  // Two entries: the package and its driver-side test harness (`@hype/virtio/testing`). Splitting (also
  // for CJS) puts the modules both use in shared chunks, so a transport or queue built through the
  // harness is the same class as one imported from the package root.
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' },
  format: ['esm', 'cjs'],
  splitting: true,
  dts: true,
  sourcemap: true,
  clean: true,
  shims: true,
  target: 'node20',
});
