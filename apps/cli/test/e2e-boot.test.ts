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
import { BIN, ensureBuiltBin, runHype, runProgram } from './bin-process.js';
import { MiB, workdir } from './helpers.js';

const hasKvm = existsSync('/dev/kvm');
if (!hasKvm) console.warn('[hype] /dev/kvm absent on this host: skipping KVM tests in apps/cli/test/e2e-boot.test.ts');

/** A TAP device can be made in a new network namespace: root (CI, the rig's L1) and the tun driver. */
const canMakeTap = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const TAP_WRAPPER = fileURLToPath(new URL('./fixtures/tap-netns.mjs', import.meta.url));

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

  it("hype run -- CMD: the command's stdout and stderr apart, stdin piped in, its exit status passed through; --net tap in a network namespace", async () => {
    const stdio = 'echo out; echo err >&2; read line; echo "in: $line"';
    if (!canMakeTap) {
      console.warn('[hype] not root or no /dev/net/tun: the TAP checks of apps/cli/test/e2e-boot.test.ts are left out');
      const result = await runHype(['run', '--', 'sh', '-c', `${stdio}; exit 7`], { input: 'from the host\n', timeout: 600_000 });
      expect(result.stdout, `stderr:\n${result.stderr}`).toBe('out\nin: from the host\n');
      expect(result.stderr).toBe('err\n');
      expect(result.code).toBe(7);
      return;
    }
    // The same boot checks a TAP network (fixtures/tap-netns.mjs: the host side at 10.1.0.1 in a new
    // network namespace): ping and a download from the guest, then the host pings the guest and fetches
    // from its httpd while the guest waits on /host-done.
    const net = [
      'ip addr add 10.1.0.2/24 dev eth0',
      'ping -c 2 -W 5 10.1.0.1 >/dev/null && echo ping-ok',
      'echo "down $(wget -q -O - http://10.1.0.1:8000/blob | sha256sum | cut -d" " -f1)"',
      'mkdir -p /tmp/www && head -c 4194304 /dev/urandom >/tmp/www/blob && httpd -p 9000 -h /tmp/www',
      'echo "served $(sha256sum </tmp/www/blob | cut -d" " -f1)"',
      'echo "host $(wget -q -O - http://10.1.0.1:8000/host-done)"',
    ].join('; ');
    const reportPath = join(workdir().dir, 'tap-report.json');
    const result = await runProgram(
      'unshare',
      ['--net', '--', process.execPath, TAP_WRAPPER, reportPath, BIN, 'run', '--net', 'tap=hype-tap0', '--cmdline', 'hype.dhcp=off', '--', 'sh', '-c', `${stdio}; ${net}; exit 7`],
      { input: 'from the host\n', timeout: 600_000 },
    );
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { blobSha256: string; fetchedSha256: string; pings: number; errors: string[] };
    const lines = result.stdout.split('\n');
    expect(lines.slice(0, 3), `stderr:\n${result.stderr}`).toEqual(['out', 'in: from the host', 'ping-ok']);
    expect(lines[3]).toBe(`down ${report.blobSha256}`);
    const served = /^served ([0-9a-f]{64})$/.exec(lines[4] ?? '')?.[1];
    expect(served, result.stdout).toBeDefined();
    expect(lines.slice(5), JSON.stringify(report)).toEqual([`host ping-ok ${served}`, '']);
    expect(report.errors).toEqual([]);
    expect(report.fetchedSha256).toBe(served);
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
