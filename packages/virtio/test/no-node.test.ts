// @hype/virtio serves other emulators (and browsers): both entries, the package and its driver-side
// harness @hype/virtio/testing, import no node:* module or Node builtin, use no Node global, and need
// nothing from outside but @hype/guest-memory.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from '../../../scripts/test/node-free.js';

const srcDir = fileURLToPath(new URL('../src/', import.meta.url));
const options = { allow: ['@hype/guest-memory'], root: srcDir };

describe('@hype/virtio stays Node-free', () => {
  it('src/index.ts: nothing it reaches needs Node', () => {
    const report = nodeFreeReport([join(srcDir, 'index.ts')], options);
    expect(report.files).toContain('mmio.ts');
    expect(report.problems).toEqual([]);
  });

  it('@hype/virtio/testing (src/testing/index.ts): nothing it reaches needs Node', () => {
    const report = nodeFreeReport([join(srcDir, 'testing', 'index.ts')], options);
    expect(report.files).toContain('testing/test-driver.ts');
    expect(report.problems).toEqual([]);
  });

  it('the two entries reach every src module', () => {
    expect(nodeFreeReport([join(srcDir, 'index.ts'), join(srcDir, 'testing', 'index.ts')], options).files).toEqual(tsSources(srcDir));
  });
});
