/**
 * End-to-end under the nested rig: `hype run --accel nested` on a pseudo-terminal boots the default
 * guest inside QEMU emulation (rig/kvm-in-qemu.sh), reaches its shell, and the guest's `poweroff` ends
 * hype with exit 0; a writable disk's guest writes land in the host file. Needs qemu-system-x86_64
 * (`bash scripts/setup.sh`), not /dev/kvm; skipped inside the rig itself (no QEMU in QEMU).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, ensureBuiltBin, runHype } from './bin-process.js';
import { MiB, workdir } from './helpers.js';

const insideRig = existsSync('/run/kvm-in-qemu');
const hasQemu = !insideRig && spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasQemu) console.warn('[hype] no qemu-system-x86_64 (or inside the rig): skipping apps/cli/test/e2e-nested.test.ts');

const MARK = 'written-in-the-nested-guest';

describe.skipIf(!hasQemu)('hype run --accel nested (QEMU emulation)', () => {
  beforeAll(async () => {
    await ensureBuiltBin();
    const build = await runHype(['guest', 'build']);
    if (build.code !== 0) throw new Error(`hype guest build failed (exit ${build.code}):\n${build.stderr}`);
  }, 900_000);

  it('on a terminal: the notice, the shell, a disk write, and poweroff ends with exit 0', async () => {
    const w = workdir();
    const disk = join(w.dir, 'nested.img');
    writeFileSync(disk, Buffer.alloc(MiB));
    const inner = `"${process.execPath}" "${BIN}" run --accel nested --disk ${disk}; echo "hype-exit=$?"`;
    const child = spawn('script', ['-qfec', `sh -c '${inner}'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let typed = false;
    child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
      output += chunk;
      if (!typed && /hype:[^\n]*# /.test(output)) {
        typed = true;
        child.stdin.write(`printf ${MARK} | dd of=/dev/vda conv=notrunc 2>/dev/null; sync; poweroff\n`);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 1_500_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    const text = output.replace(/\r/g, '');
    expect(text).toContain('hype: running nested under QEMU emulation (--accel nested), expect a slow guest');
    expect(typed, text).toBe(true);
    expect(text).toContain('hype-exit=0');
    expect(code).toBe(0);
    expect(readFileSync(disk).subarray(0, MARK.length).toString('latin1')).toBe(MARK);
  }, 1_600_000);
});
