import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { defineConfig } from 'tsup';
import type { Plugin } from 'esbuild';

/**
 * Writes dist/main.inputs.json: the files from outside src/ that went into the bundle (the workspace
 * packages' dist files, commander), relative to dist/. bin.cjs runs the bundle only while none of them
 * that exists is newer than it (a package rebuilt after the CLI: the bundle would hold its old code).
 */
const bundleInputs: Plugin = {
  name: 'bundle-inputs',
  setup(build) {
    build.initialOptions.metafile = true;
    build.onEnd((result) => {
      if (!result.metafile) return;
      const dist = resolve('dist');
      const inputs = Object.keys(result.metafile.inputs)
        .filter((input) => !input.startsWith('src/') && input !== 'package.json')
        .map((input) => relative(dist, resolve(input)));
      mkdirSync(dist, { recursive: true });
      writeFileSync(join(dist, 'main.inputs.json'), `${JSON.stringify(inputs.sort(), null, 1)}\n`);
    });
  },
};

/**
 * commander requires node:child_process at the top of lib/command.js, for subcommands that are separate
 * executables (hype has none); loading it, with node:net and node:dgram behind it, is tens of ms of every
 * start under emulation. In the bundle that require becomes one made on the first spawn. The build fails
 * if commander's line changes (then look again at what it uses of child_process).
 */
const lazyCommanderChildProcess: Plugin = {
  name: 'lazy-commander-child-process',
  setup(build) {
    build.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const eager = "const childProcess = require('node:child_process');";
      if (!source.includes(eager) || /childProcess\.(?!spawn\()/.test(source)) {
        throw new Error(`${args.path}: commander's use of node:child_process changed: update the lazy-commander-child-process plugin`);
      }
      return { contents: source.replace(eager, "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };"), loader: 'js' };
    });
  },
};

export default defineConfig([
  {
    // The library entry (runCli, parseArgs, ...) for programmatic use.
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    // No `clean`: the builds run at once and write into dist/; the build script empties it first.
    shims: true,
    target: 'node20',
  },
  {
    // The `hype` executable, dist/bin.cjs: a small CommonJS file (Node then never starts its ES module
    // loader; the shebang in src/bin.ts is kept and tsup makes the file executable) that runs main.cjs
    // through V8's code cache.
    entry: ['src/bin.ts'],
    format: ['cjs'],
    sourcemap: true,
    shims: true,
    target: 'node20',
    // Loaded only when main.cjs is out of date, as the ES module it is (below).
    external: ['./main.js'],
  },
  {
    // main.ts unbundled (the packages imported from node_modules), for when main.cjs is older than them.
    entry: ['src/main.ts'],
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
  },
  {
    // What bin.cjs runs: the CLI in one CommonJS file, with the workspace packages (@hype/kvm-sys's
    // JavaScript too: it finds its native addon by resolving its package name, a dependency of this
    // package) and commander bundled in: one file to read and compile, from V8's code cache, instead of
    // some twenty modules to resolve.
    entry: { main: 'src/main.ts' },
    format: ['cjs'],
    sourcemap: true,
    shims: true,
    target: 'node20',
    noExternal: [/^@hype\//, 'commander'],
    esbuildPlugins: [bundleInputs, lazyCommanderChildProcess],
    // import() of what stays outside (node:dgram in virtio-net) becomes require(): bin.cjs runs this file
    // through vm.Script, where import() has no loader and fails.
    esbuildOptions(options) {
      options.supported = { ...options.supported, 'dynamic-import': false };
      // Whitespace and syntax only, names kept (stack traces stay readable): the source is read, checked
      // and turned into a string at every start, and V8 parses it again for each function compiled later.
      options.minifyWhitespace = true;
      options.minifySyntax = true;
    },
  },
]);
