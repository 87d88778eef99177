/**
 * End-to-end with KVM: the built `hype` binary boots the default guest with two disks, a script is
 * typed on its console (stdin is a pipe), and the host checks the console output, the exit code and
 * what the guest wrote to the disk file. Needs /dev/kvm; the first run also builds the default guest.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BIN, ensureBuiltBin, runHype } from './bin-process.js';
import { MiB, workdir } from './helpers.js';

const hasKvm = existsSync('/dev/kvm');
if (!hasKvm) console.warn('[hype] /dev/kvm absent on this host: skipping KVM tests in apps/cli/test/e2e-boot.test.ts');

const DISK_TEXT = 'hype-e2e-disk-v1';
const GUEST_TEXT = 'written-by-the-guest';
/**
 * The default guest's shell prompt (guest/rootfs/etc/profile: PS1='hype:\w\$ '); ash may follow it with
 * a cursor-position query (ESC [ 6 n).
 */
// eslint-disable-next-line no-control-regex -- that ESC, on purpose
const PROMPT = /hype:[^\n]*# (\x1b\[6n)?$/;

describe.skipIf(!hasKvm)('hype run (KVM): default guest, disks, console script', () => {
  beforeAll(async () => {
    await ensureBuiltBin();
    const build = await runHype(['guest', 'build']);
    if (build.code !== 0) throw new Error(`hype guest build failed (exit ${build.code}):\n${build.stderr}`);
  }, 900_000);

  it('runs the script on the console, writes the disk; busybox poweroff -f (a halt, no ACPI) ends hype with exit 0', async () => {
    const w = workdir();
    const disk = join(w.dir, 'data.img');
    const image = Buffer.alloc(4 * MiB);
    image.write(DISK_TEXT, 0, 'latin1');
    writeFileSync(disk, image);

    const script = [
      'echo BEGIN-$((6 * 7))',
      'echo vda=$(cat /sys/block/vda/size) vdb=$(cat /sys/block/vdb/size) serial=$(cat /sys/block/vdb/serial 2>/dev/null)',
      `head -c ${DISK_TEXT.length} /dev/vda; echo`,
      `printf '${GUEST_TEXT}' | dd of=/dev/vda bs=4096 seek=1 conv=notrunc 2>/dev/null; sync`,
      'echo END',
      // busybox's own poweroff, not the default guest's wrapper (port 0xf4): its kernel has no ACPI, so
      // this halts every vCPU with interrupts off, which hype must notice.
      '/bin/busybox poweroff -f',
      '',
    ].join('\n');
    let sent = false;
    const result = await runHype(['run', '--disk', disk, '--disk', 'mem:8M,serial=scratch', '--mem', '256M'], {
      onStdout: (soFar, stdin) => {
        // Type the script once the shell prompts: console input sent before the shell reads is not lost
        // by hype, but waiting keeps the transcript readable.
        if (!sent && PROMPT.test(soFar)) {
          sent = true;
          stdin.write(script);
        }
      },
      timeout: 600_000,
    });

    const output = result.stdout.replace(/\r/g, '');
    expect(result.stderr, `stderr:\n${result.stderr}\nstdout:\n${output}`).toMatch(/^\n?hype: guest halted with interrupts off \(a power-off without ACPI\)\n$/);
    expect(output).toContain('BEGIN-42');
    expect(output).toContain(`vda=${(4 * MiB) / 512} vdb=${(8 * MiB) / 512} serial=scratch`);
    expect(output).toMatch(new RegExp(`^${DISK_TEXT}$`, 'm'));
    expect(output).toContain('END');
    expect(result.code).toBe(0);
    const after = readFileSync(disk);
    expect(after.subarray(4096, 4096 + GUEST_TEXT.length).toString('latin1')).toBe(GUEST_TEXT);
    expect(after.subarray(0, DISK_TEXT.length).toString('latin1')).toBe(DISK_TEXT);
  }, 600_000);

  it("hype run -- CMD: the command's stdout and stderr apart, stdin piped in, its exit status passed through", async () => {
    const result = await runHype(['run', '--', 'sh', '-c', 'echo out; echo err >&2; read line; echo "in: $line"; exit 7'], {
      input: 'from the host\n',
      timeout: 600_000,
    });
    expect(result.stdout, `stderr:\n${result.stderr}`).toBe('out\nin: from the host\n');
    expect(result.stderr).toBe('err\n');
    expect(result.code).toBe(7);
  }, 600_000);

  it("the README's library example (examples/exec.mjs) boots the default guest and runs a command", async () => {
    const example = fileURLToPath(new URL('../../../examples/exec.mjs', import.meta.url));
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      execFile(process.execPath, [example], { timeout: 600_000 }, (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') reject(error);
        else resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      });
    });
    expect(result.stdout, result.stderr).toMatch(/^Linux 6\.1\.\d+ \(exit 3\)\n$/);
    expect(result.code).toBe(0);
  }, 600_000);

  it('SIGTERM stops a running guest: exit 143', async () => {
    let signalled = false;
    const result = await runHype(['run'], {
      onStdout: (soFar, _stdin, child) => {
        if (!signalled && PROMPT.test(soFar)) {
          signalled = true;
          child.kill('SIGTERM');
        }
      },
      timeout: 600_000,
    });
    expect(result.code).toBe(143);
    expect(result.stderr).toMatch(/hype: stopped by SIGTERM\n$/);
  }, 600_000);

  it('on a terminal: raw mode (Ctrl-C reaches the guest), Ctrl-A x quits with exit 0, the terminal is restored', async () => {
    // util-linux `script` gives hype a pseudo-terminal; after hype, `stty -a` shows the terminal's modes.
    const inner = `"${process.execPath}" "${BIN}" run; code=$?; echo; echo "hype-exit=$code"; stty -a`;
    const child = spawn('script', ['-qfec', `sh -c '${inner}'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let step = 0;
    child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
      output += chunk;
      const prompts = output.split(/hype:[^\n]*# /).length - 1;
      if (step === 0 && prompts >= 1) {
        step = 1;
        child.stdin.write('\x03'); // to the guest shell: a fresh prompt, hype keeps running
      } else if (step === 1 && prompts >= 2) {
        step = 2;
        child.stdin.write('\x01x');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const text = output.replace(/\r/g, '');
    expect(step, text).toBe(2);
    expect(text).toContain('hype: terminated by Ctrl-A x');
    expect(text).toContain('hype-exit=0');
    const modes = text.slice(text.indexOf('hype-exit=0'));
    expect(modes).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(modes).toMatch(/(^|\s)echo(\s|$)/m);
    expect(code).toBe(0);
  }, 600_000);
});
