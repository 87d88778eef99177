import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', node: 'node/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  shims: true,
  target: 'node20',
  // An optional dependency (the TAP backend's native addon), imported on first use: never bundled.
  external: ['@hype/kvm-sys'],
});
