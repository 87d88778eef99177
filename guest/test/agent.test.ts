// The guest agent's build: compiled static with gcc, cached by content like the kernel, carried by the
// initrd as /usr/sbin/hype-agent (0755). Its protocol is tested end to end in packages/guest-agent.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AGENT_CFLAGS,
  AGENT_INITRD_PATH,
  AGENT_SOURCE_PATH,
  agentCacheKey,
  buildInitrd,
  checkStaticX8664Elf,
  compileAgent,
  decodeNewc,
  DEFAULT_BUSYBOX,
  ensureAgent,
  S_IFMT,
  S_IFREG,
} from '@hype/guest';

const hasGcc = spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasGcc) console.warn('[hype] gcc not found (apt-get install gcc libc6-dev): skipping the guest agent build tests');

const scratch = mkdtempSync(join(tmpdir(), 'hype-agent-build-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('agentCacheKey', () => {
  it('changes with the source, the tool chain, the flags and the driver version, and only with them', () => {
    const base = { source: 'int main(void) { return 0; }\n', toolchain: 'gcc (Debian 12.2.0-14) 12.2.0; libc.a 1:2' };
    const key = agentCacheKey(base);
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(agentCacheKey({ ...base })).toBe(key);
    expect(agentCacheKey({ ...base, source: Buffer.from(base.source) })).toBe(key);
    expect(agentCacheKey({ ...base, source: `${base.source} ` })).not.toBe(key);
    expect(agentCacheKey({ ...base, toolchain: 'gcc 13; libc.a 1:2' })).not.toBe(key);
    expect(agentCacheKey({ ...base, flags: [...AGENT_CFLAGS, '-g'] })).not.toBe(key);
    expect(agentCacheKey({ ...base, driverVersion: 99 })).not.toBe(key);
  });
});

describe.skipIf(!hasGcc)('the agent build', () => {
  it('compiles hype-agent.c into a static x86-64 program with every warning an error', () => {
    const out = join(scratch, 'hype-agent');
    compileAgent({ out });
    expect(() => checkStaticX8664Elf(readFileSync(out), out)).not.toThrow();
    const help = spawnSync(out, ['--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: hype-agent \[--port N \| --unix PATH\]/);
    expect(help.stdout).toMatch(/Protocol version 1: guest\/agent\/PROTOCOL\.md/);
    const bad = spawnSync(out, ['--port', 'x'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--port needs a port number/);
  });

  it('says what failed: the compiler output, or which packages to install', () => {
    const broken = join(scratch, 'broken.c');
    writeFileSync(broken, 'int main(void) { return undeclared; }\n');
    expect(() => compileAgent({ source: broken, out: join(scratch, 'broken') })).toThrow(/compiling .*broken\.c failed \(gcc exit 1\):\n.*undeclared/s);
    expect(() => compileAgent({ cc: 'hype-no-such-cc', out: join(scratch, 'x') })).toThrow(/hype-no-such-cc not found: apt-get install gcc libc6-dev/);
    expect(() => ensureAgent({ cc: 'hype-no-such-cc', cacheDir: scratch })).toThrow(/not found: apt-get install gcc libc6-dev/);
  });

  it('caches the build by content under <cache>/agent-<key>/', () => {
    const cacheDir = join(scratch, 'cache');
    const first = ensureAgent({ cacheDir });
    expect(first.cached).toBe(false);
    expect(first.path).toBe(join(cacheDir, `agent-${first.key}`, 'hype-agent'));
    expect(statSync(first.path).mode & 0o111).not.toBe(0);
    const again = ensureAgent({ cacheDir });
    expect(again).toEqual({ ...first, cached: true });
    expect(existsSync(join(cacheDir, 'tmp', `agent-${first.key}-${process.pid}`))).toBe(false);
    // Another source is another entry.
    const source = join(scratch, 'edited.c');
    copyFileSync(AGENT_SOURCE_PATH, source);
    writeFileSync(source, `${readFileSync(source, 'utf8')}\n/* edited */\n`);
    const edited = ensureAgent({ cacheDir, source });
    expect(edited.key).not.toBe(first.key);
    expect(edited.cached).toBe(false);
  });

  it.skipIf(!existsSync(DEFAULT_BUSYBOX))('puts the agent in the initrd as /usr/sbin/hype-agent, mode 0755, unless left out', () => {
    const agent = ensureAgent({ cacheDir: join(scratch, 'cache') });
    const members = new Map(decodeNewc(buildInitrd({ agent: agent.path })).map((m) => [m.name, m]));
    const member = members.get(AGENT_INITRD_PATH)!;
    expect(AGENT_INITRD_PATH).toBe('usr/sbin/hype-agent');
    expect(member.header.mode & S_IFMT).toBe(S_IFREG);
    expect(member.header.mode & 0o7777).toBe(0o755);
    expect(member.data.equals(readFileSync(agent.path))).toBe(true);
    expect(decodeNewc(buildInitrd({ agent: false })).some((m) => m.name === AGENT_INITRD_PATH)).toBe(false);
    expect(decodeNewc(buildInitrd()).some((m) => m.name === AGENT_INITRD_PATH)).toBe(true);
    expect(() => buildInitrd({ agent: join(scratch, 'missing') })).toThrow(/the guest agent .*missing does not exist/);
    expect(() => buildInitrd({ agent: process.execPath })).toThrow(/dynamically linked; the initrd needs a static hype-agent/);
  });
});
