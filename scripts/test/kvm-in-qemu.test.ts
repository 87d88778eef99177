/**
 * scripts/kvm-in-qemu.sh's stall handling, with a fake QEMU (fixtures/fake-qemu.sh) standing in for L1:
 * a stalled or panicked L1 is noticed within the configured seconds and replaced by a fresh one, at most
 * KVM_IN_QEMU_ATTEMPTS times, and the command's own exit status comes back.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../kvm-in-qemu.sh', import.meta.url));
const fakeQemu = fileURLToPath(new URL('./fixtures/fake-qemu.sh', import.meta.url));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hype-rig-test-'));
  writeFileSync(join(dir, 'vmlinuz'), '');
  writeFileSync(join(dir, 'initrd'), '');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function rig(plan: string, env: Record<string, string> = {}) {
  const started = performance.now();
  const r = spawnSync('bash', [script, 'echo', 'hello'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
    env: {
      ...process.env,
      HYPE_CACHE_DIR: join(dir, 'cache'),
      KVM_IN_QEMU_QEMU: fakeQemu,
      KVM_IN_QEMU_L1_KERNEL: join(dir, 'vmlinuz'),
      KVM_IN_QEMU_L1_INITRD: join(dir, 'initrd'),
      KVM_IN_QEMU_STALL_S: '2',
      KVM_IN_QEMU_BOOT_S: '3',
      FAKE_L1_PLAN: plan,
      FAKE_L1_STATE: join(dir, 'state'),
      ...env,
    },
  });
  return { ...r, seconds: (performance.now() - started) / 1000 };
}

describe('kvm-in-qemu.sh: a stalled L1 is replaced', () => {
  it('passes the command and its exit status through when L1 works', () => {
    const r = rig('ok:7');
    expect(r.status).toBe(7);
    expect(r.stdout).toContain('fake L1 ran: echo hello 2>&1 | cat');
    expect(r.stderr).toBe('');
  });

  it('restarts L1 when its heartbeat stops, within seconds, and keeps the command status', () => {
    const r = rig('stall,ok:0');
    expect(r.stderr).toMatch(/attempt 1 of 3: L1 stalled \(no heartbeat for [2-9] s\); starting a fresh L1/);
    expect(r.status).toBe(0);
    expect(r.seconds).toBeLessThan(20);
  });

  it('restarts L1 that never sends a heartbeat (stalled while booting) and one that panicked', () => {
    const r = rig('mute,panic,ok:3');
    expect(r.stderr).toMatch(/attempt 1 of 3: L1 stalled/);
    expect(r.stderr).toMatch(/attempt 2 of 3: L1 stopped without reporting the command's status \(an L1 kernel panic/);
    expect(r.status).toBe(3);
  });

  it('gives up after KVM_IN_QEMU_ATTEMPTS stalls with exit 125', () => {
    const r = rig('stall,stall,ok:0', { KVM_IN_QEMU_ATTEMPTS: '2' });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/attempt 2 of 2: L1 stalled .*giving up/);
  });

  it('rejects a bad setting in one line', () => {
    const r = rig('ok:0', { KVM_IN_QEMU_STALL_S: 'soon' });
    expect(r.status).toBe(125);
    expect(r.stderr.trim()).toBe('kvm-in-qemu: KVM_IN_QEMU_STALL_S=soon: use a positive whole number');
  });
});
