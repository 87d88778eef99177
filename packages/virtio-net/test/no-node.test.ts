// The device must run outside Node (other emulators, browsers): what src/index.ts reaches imports no
// node:* module or Node builtin, uses no Node global, and needs nothing from outside but @hype/virtio
// (the @hype/virtio-net/node entry lives apart, in node/).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from '../../../scripts/test/node-free.js';

const srcDir = fileURLToPath(new URL('../src/', import.meta.url));

describe('virtio-net core stays Node-free', () => {
  it('src/index.ts reaches every src module, and none needs Node or a package besides @hype/virtio', () => {
    const report = nodeFreeReport([join(srcDir, 'index.ts')], { allow: ['@hype/virtio'] });
    expect(report.files).toEqual(tsSources(srcDir));
    expect(report.problems).toEqual([]);
  });
});
