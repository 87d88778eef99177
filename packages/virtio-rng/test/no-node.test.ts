// The device must run outside Node (other emulators, browsers): no node:* or builtin imports in src/.
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const srcDir = join(__dirname, '..', 'src');
const builtins = new Set(builtinModules);

describe('virtio-rng stays Node-free', () => {
  it('no src module imports node:* or a Node builtin, and only @hype/virtio from outside', () => {
    const offenders: string[] = [];
    const files = readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const text = readFileSync(join(srcDir, f), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1];
        if (spec.startsWith('node:') || builtins.has(spec)) offenders.push(`${f}: ${spec}`);
        else if (!spec.startsWith('.') && spec !== '@hype/virtio') offenders.push(`${f}: ${spec} (not a declared dependency)`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
