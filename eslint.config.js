// ESLint (flat config): @eslint/js recommended and typescript-eslint recommended over the whole repo.
// The sets without type information: they need no TypeScript program, so `pnpm lint` stays quick on a
// small machine (`pnpm typecheck` is the type check; the type-aware sets took 4x as long here).
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores([
    '**/node_modules/',
    '**/dist/',
    '**/build/', // packages/kvm-sys/build: node-gyp's output
    '**/prebuilds/',
    '**/coverage/',
    '**/.turbo/',
    'guest/out/', // the guest kernel and initrd build
    'bench/results/',
  ]),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // Everything here runs on Node (the packages' Node-free cores are checked by their no-node tests).
    languageOptions: { globals: { ...globals.node } },
  },
  {
    rules: {
      // Unused bindings: as `noUnusedLocals`/`noUnusedParameters`, a leading `_` marks a deliberate one.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // `let x; const f = () => x?.g(); x = new X(f);`: a closure made before the one assignment reads it later.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
);
