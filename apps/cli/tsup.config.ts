import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The library entry (runCli, parseArgs, ...) for programmatic use.
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    // No `clean`: both builds run at once and write into dist/; the build script empties it first.
    shims: true,
    target: 'node20',
  },
  {
    // The `hype` executable: ESM only (it uses top-level await); the shebang in src/bin.ts is kept and
    // tsup makes the file executable.
    entry: ['src/bin.ts'],
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
  },
]);
