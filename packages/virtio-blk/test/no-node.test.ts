// The core entry point must run outside Node (other emulators, browsers): no node:* or builtin imports
// in src/ (the @hype/virtio-blk/node entry lives apart, in node/).
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const srcDir = join(__dirname, '..', 'src');
const builtins = new Set(builtinModules);

describe('core stays Node-free', () => {
  it('no src module imports node:*, a Node builtin or the node entry', () => {
    const offenders: string[] = [];
    for (const f of readdirSync(srcDir)) {
      if (!f.endsWith('.ts')) continue;
      const text = readFileSync(join(srcDir, f), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1];
        if (spec.startsWith('node:') || builtins.has(spec)) offenders.push(`${f}: ${spec}`);
        if (spec.includes('/node/')) offenders.push(`${f}: imports the node entry`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
