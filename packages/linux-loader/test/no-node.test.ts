// The loader core (@hype/linux-loader, src/index.ts) must run outside Node (other emulators, browsers):
// nothing it reaches imports a node:* module or Node builtin, uses a Node global, or needs a package
// besides @hype/guest-memory. The Node helpers are the separate @hype/linux-loader/node entry
// (src/node.ts), which the core must not import.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from '../../../scripts/test/node-free.js';

const srcDir = fileURLToPath(new URL('../src/', import.meta.url));

describe('the loader core stays Node-free', () => {
  it('src/index.ts reaches every src module but node.ts, and none needs Node', () => {
    const report = nodeFreeReport([join(srcDir, 'index.ts')], { allow: ['@hype/guest-memory'] });
    expect(report.files).toEqual(tsSources(srcDir).filter((f) => f !== 'node.ts'));
    expect(report.problems).toEqual([]);
  });

  it('the check sees the Node entry for what it is', () => {
    const problems = nodeFreeReport([join(srcDir, 'node.ts')], { allow: ['@hype/guest-memory'] }).problems;
    expect(problems).toContain('node.ts: node:fs (a Node builtin)');
    expect(problems).toContain('node.ts: process (a Node global)');
  });
});
