#!/usr/bin/env node
/**
 * The `hype` executable (built as CommonJS, dist/bin.cjs: an ES module entry would first start Node's ES
 * module loader, a tenth of a second or more of start-up under emulation). It runs main.ts from
 * dist/main.cjs, one CommonJS bundle of the CLI with the workspace packages and commander inside (the
 * native addon stays outside), compiled through V8's code cache in the hype cache directory
 * (code-cache.ts): resolving and compiling some twenty ES modules was most of hype's start-up on a slow
 * machine. HYPE_CODE_CACHE=0 turns the cache off (the bundle is then compiled from source each time).
 * When a package in the bundle was rebuilt after it (a source checkout), the unbundled dist/main.js runs
 * instead, with the packages as they are now.
 */
import { join } from 'node:path';
import { bundleIsCurrent, cachedRequire, hypeCacheRoot } from './code-cache.js';
import type { MainOptions } from './main.js';

type Main = (options: MainOptions) => Promise<never>;

const options: MainOptions = {};

async function start(): Promise<never> {
  const file = join(__dirname, 'main.cjs');
  const main = bundleIsCurrent(file, join(__dirname, 'main.inputs.json'))
    ? bundledMain(file)
    : ((await import('./main.js')) as { main: Main }).main;
  return main(options);
}

function bundledMain(file: string): Main {
  const root = process.env.HYPE_CODE_CACHE === '0' ? undefined : hypeCacheRoot(process.env);
  const loaded = cachedRequire({
    file,
    cacheDir: root === undefined ? undefined : join(root, 'code-cache', 'cli'),
    // The cache holds what ran before it was written: a `hype run` makes one that covers start-up, and
    // one whose VM started makes the complete one.
    writeAtExit: process.argv.slice(2).includes('run'),
  });
  options.onVmStarted = () => loaded.reachedFar();
  return (loaded.exports as { main: Main }).main;
}

void start();
