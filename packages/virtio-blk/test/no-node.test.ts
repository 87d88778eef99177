// The core entry point must run outside Node (other emulators, browsers): no node:* or builtin imports
// in src/ except the separate @hype/virtio-blk/node entry.
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const srcDir = join(__dirname, '..', 'src');
const builtins = new Set(builtinModules);

describe('core stays Node-free', () => {
  it('no src module but node.ts imports node:* or a Node builtin', () => {
    const offenders: string[] = [];
    for (const f of readdirSync(srcDir)) {
      if (!f.endsWith('.ts') || f === 'node.ts') continue;
      const text = readFileSync(join(srcDir, f), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1];
        if (spec.startsWith('node:') || builtins.has(spec)) offenders.push(`${f}: ${spec}`);
        if (spec === './node.js') offenders.push(`${f}: imports the node entry`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
