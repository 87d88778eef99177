// One protocol in three places: guest/agent/PROTOCOL.md (the document), guest/agent/hype-agent.c (the
// agent) and src/protocol.ts (the codec). Their frame types, flags and limits must agree.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { guestPath } from '@hype/guest';
import { DATA_CHUNK_SIZE, DEFAULT_AGENT_PORT, ExecFlags, FrameType, KillFlags, MAX_FRAME_LENGTH, PROTOCOL_VERSION, WriteFileFlags } from '../src/index.js';

const source = readFileSync(guestPath('agent', 'hype-agent.c'), 'utf8');
const spec = readFileSync(guestPath('agent', 'PROTOCOL.md'), 'utf8');

/** `#define NAME value` with simple arithmetic (`(1u << 20)`, `(64u * 1024)`). */
function define(name: string): number {
  const m = new RegExp(`^#define ${name} (.+)$`, 'm').exec(source);
  if (!m) throw new Error(`no #define ${name}`);
  const expr = m[1].replace(/\/\*.*\*\//, '').replace(/(\d)u\b/g, '$1').trim();
  if (!/^[\d\s()<*x+a-f-]+$/i.test(expr)) throw new Error(`#define ${name} ${expr}: not a constant expression`);
  return Function(`return (${expr});`)() as number;
}

describe('PROTOCOL.md, hype-agent.c and the codec agree', () => {
  it('on the frame types', () => {
    const enumBody = /enum frame_type \{([^}]*)\}/.exec(source)![1];
    const inC = Object.fromEntries([...enumBody.matchAll(/T_(\w+) = (0x[0-9a-f]+)/g)].map((m) => [m[1], Number(m[2])]));
    expect(inC).toEqual(FrameType);
    const inSpec = Object.fromEntries([...spec.matchAll(/^\| (0x[0-9a-f]{2}) \| (\w+) \| (host|agent|both) \|/gm)].map((m) => [m[2], Number(m[1])]));
    expect(inSpec).toEqual(FrameType);
  });

  it('on the version, the limits and the flags', () => {
    expect(define('PROTOCOL_VERSION')).toBe(PROTOCOL_VERSION);
    expect(define('MAX_FRAME_LENGTH')).toBe(MAX_FRAME_LENGTH);
    expect(define('DATA_CHUNK')).toBe(DATA_CHUNK_SIZE);
    expect(define('DEFAULT_PORT')).toBe(DEFAULT_AGENT_PORT);
    expect(define('STDIN_WINDOW')).toBe(256 * 1024);
    expect(define('EXEC_F_STDIN')).toBe(ExecFlags.STDIN);
    expect(define('EXEC_F_REPLACE_ENV')).toBe(ExecFlags.REPLACE_ENV);
    expect(define('KILL_F_GROUP')).toBe(KillFlags.GROUP);
    expect(define('WRITE_F_MKDIRS')).toBe(WriteFileFlags.MKDIRS);
    expect(spec).toContain('# hype-agent protocol, version 1');
    expect(spec).toContain('**1 .. 1048576** (1 MiB)');
    expect(spec).toContain('**port 1024**');
    expect(spec).toContain('(HELLO_ACK; 256 KiB)');
  });
});
