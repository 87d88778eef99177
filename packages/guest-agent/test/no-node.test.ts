// The codec and the client must run outside Node (a browser talking to a VM over another transport, other
// emulators): what src/index.ts reaches imports no node:* module or Node builtin, uses no Node global, and
// needs no package at all. The node/ entry is the Node side.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from '../../../scripts/test/node-free.js';

const srcDir = fileURLToPath(new URL('../src/', import.meta.url));

describe('guest-agent stays Node-free', () => {
  it('src/index.ts reaches every src module, and none needs Node or another package', () => {
    const report = nodeFreeReport([join(srcDir, 'index.ts')]);
    expect(report.files).toEqual(tsSources(srcDir));
    expect(report.packages).toEqual([]);
    expect(report.problems).toEqual([]);
  });
});
