import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  // src alone, without Node's types (tsconfig.json adds the tests and those types).
  tsconfig: 'tsconfig.build.json',
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  shims: true,
  target: 'node20',
});
