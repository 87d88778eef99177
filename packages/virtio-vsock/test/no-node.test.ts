// The core entry point must run outside Node (other emulators, browsers): no node:* or builtin imports
// in src/, nothing from the node/ entry, and nothing from outside but @hype/virtio. The node/ entry may
// use Node (it is the Node side).
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const srcDir = join(__dirname, '..', 'src');
const builtins = new Set(builtinModules);

describe('virtio-vsock core stays Node-free', () => {
  it('no src module imports node:*, a Node builtin, the node entry or an undeclared package', () => {
    const offenders: string[] = [];
    const files = readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const text = readFileSync(join(srcDir, f), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1];
        if (spec.startsWith('node:') || builtins.has(spec)) offenders.push(`${f}: ${spec}`);
        else if (spec.includes('/node')) offenders.push(`${f}: imports the node entry`);
        else if (!spec.startsWith('.') && spec !== '@hype/virtio') offenders.push(`${f}: ${spec} (not a declared dependency)`);
      }
      // No Node globals either.
      for (const g of ['Buffer', 'process.', 'require(', '__dirname']) if (text.includes(g)) offenders.push(`${f}: uses ${g}`);
    }
    expect(offenders).toEqual([]);
  });
});
