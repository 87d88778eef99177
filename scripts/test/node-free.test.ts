// The import-graph check behind the packages' no-node tests (node-free.ts), on small made-up sources.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeFreeReport, tsSources } from './node-free.js';

const dir = mkdtempSync(join(tmpdir(), 'hype-node-free-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string>): string {
  const root = join(dir, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('nodeFreeReport', () => {
  it('follows relative imports of every form to their .ts sources, and only those', () => {
    const root = tree('graph', {
      'index.ts': "export { a } from './a.js';\nimport type { B } from './b';\nexport const load = () => import('./lazy.js');\nexport type { B };\n",
      'a.ts': "import { c } from './sub';\nexport const a = c;\n",
      'b.ts': 'export interface B { x: number }\n',
      'lazy.ts': 'export {};\n',
      'sub/index.ts': "export const c = 1;\n",
      'node.ts': "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n",
    });
    const report = nodeFreeReport([join(root, 'index.ts')]);
    expect(report).toEqual({ files: ['a.ts', 'b.ts', 'index.ts', 'lazy.ts', 'sub/index.ts'], packages: [], problems: [] });
    expect(tsSources(root)).toEqual(['a.ts', 'b.ts', 'index.ts', 'lazy.ts', 'node.ts', 'sub/index.ts']);
    expect(nodeFreeReport([join(root, 'node.ts')]).problems).toEqual(['node.ts: node:fs (a Node builtin)']);
  });

  it('reports Node builtins, packages not allowed, type references and unresolved imports', () => {
    const root = tree('imports', {
      'index.ts': [
        '/// <reference types="node" />',
        "import { join } from 'path';",
        "import type { Stats } from 'node:fs';",
        "import { x } from '@hype/guest-memory';",
        "import { y } from '@hype/virtio-blk/node';",
        "import { z } from './missing.js';",
        "const os = require('os');",
        'export { join, x, y, z, os };',
        'export type { Stats };',
      ].join('\n'),
    });
    expect(nodeFreeReport([join(root, 'index.ts')], { allow: ['@hype/guest-memory'] })).toEqual({
      files: ['index.ts'],
      packages: ['@hype/guest-memory'],
      problems: [
        'index.ts: /// <reference types="node" />',
        'index.ts: path (a Node builtin)',
        'index.ts: node:fs (a Node builtin)',
        'index.ts: @hype/virtio-blk/node (not an allowed import)',
        'index.ts: ./missing.js does not resolve to a .ts source',
        'index.ts: os (a Node builtin)',
        'index.ts: require (a Node global)',
      ],
    });
  });

  it('reports Node globals and import.meta where they are used, not where the name is a key, member or text', () => {
    const root = tree('globals', {
      'uses.ts': [
        'export const env = process.env.X;',
        'export const b = Buffer.from([1]);',
        'export type E = NodeJS.ErrnoException;',
        'export const here = import.meta.url;',
        'export const dir = __dirname;',
      ].join('\n'),
      'clean.ts': [
        '// process.exit(1) and Buffer.from() in a comment',
        '/** Buffer space after the rings; see process.env. */',
        "export const text = 'process.env, Buffer.alloc, require(x)';",
        'export const enum Op { Buffer = 0x11 }',
        'export const table = { process: 1, Buffer: 2 };',
        'export const member = table.process + table.Buffer;',
        'export interface I { process: number; require(): void }',
        'export const immediate = (globalThis as { setImmediate?: () => void }).setImmediate;',
      ].join('\n'),
    });
    expect(nodeFreeReport([join(root, 'clean.ts')]).problems).toEqual([]);
    expect(nodeFreeReport([join(root, 'uses.ts')]).problems).toEqual([
      'uses.ts: Buffer (a Node global)',
      'uses.ts: NodeJS (a Node global)',
      'uses.ts: __dirname (a Node global)',
      'uses.ts: import.meta (the CJS build shims it with Node)',
      'uses.ts: process (a Node global)',
    ]);
  });
});
