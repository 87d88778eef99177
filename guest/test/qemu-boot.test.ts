/**
 * Boots hype's guest kernel and initrd under QEMU with TCG (a reference emulator, NOT hype) to check
 * the guest artifacts on their own: the kernel config, /init, the poweroff wrapper and every guest-side
 * check of the test runner. QEMU's microvm machine has the same shape as hype's VM: virtio-mmio devices
 * announced on the kernel command line, no ACPI, an MP table, a 16550 on 0x3f8. `isa-debug-exit` on port
 * 0xf4 plays hype's power-off port (QEMU exits with status (v << 1) | 1).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  consoleTestText,
  consoleTestTranscript,
  CONSOLE_READY,
  ensureKernel,
  guestTestCmdline,
  parseGuestTestOutput,
  prepareTestDisks,
  resultFields,
  verifyTestDisks,
  writeInitrd,
  type KernelArtifacts,
  type TestDisks,
} from '@hype/guest';

const QEMU = 'qemu-system-x86_64';
const hasQemu = spawnSync(QEMU, ['--version']).status === 0;
if (!hasQemu) console.warn(`[hype] ${QEMU} not installed (apt-get install qemu-system-x86): skipping guest/test/qemu-boot.test.ts`);

const BOOT_TIMEOUT_MS = 10 * 60_000;
const SHELL_TIMEOUT_MS = 3 * 60_000;
/**
 * /dev/console is hvc0, as in hype's console test; the whole kernel log also goes to ttyS0 (a file)
 * through the early console, kept after hvc0 takes over.
 */
const CMDLINE = 'console=hvc0 earlyprintk=serial,ttyS0,keep reboot=k panic=-1';

interface QemuOptions {
  kernel: string;
  initrd: string;
  append: string;
  cpus?: number;
  disks?: { path: string; readOnly?: boolean; serial: string }[];
  /** Called with everything hvc0 printed so far; may answer through `send`. */
  onOutput?: (output: string, send: (text: string) => void) => void;
  timeoutMs?: number;
}

interface QemuResult {
  /** What the guest wrote to hvc0 (the console, /dev/console). */
  output: string;
  /** What the guest wrote to ttyS0 (the kernel log from the start). */
  serial: string;
  /** QEMU's exit status: (v << 1) | 1 after the guest wrote v to port 0xf4. */
  status: number | null;
  seconds: number;
}

function runQemu(dir: string, options: QemuOptions): Promise<QemuResult> {
  const serialLog = join(dir, `serial-${Date.now()}.log`);
  const args = [
    '-M', 'microvm,acpi=off',
    '-accel', 'tcg',
    '-m', '256',
    '-smp', String(options.cpus ?? 1),
    '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-no-reboot',
    '-kernel', options.kernel,
    '-initrd', options.initrd,
    '-append', options.append,
    '-serial', `file:${serialLog}`,
    '-chardev', 'stdio,id=hvc,signal=off',
    '-device', 'virtio-serial-device',
    '-device', 'virtconsole,chardev=hvc',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=1',
    // QEMU's own virtio-rng: the reference for the guest's rng check
    '-device', 'virtio-rng-device',
  ];
  (options.disks ?? []).forEach((disk, i) => {
    args.push('-drive', `if=none,id=disk${i},format=raw,file=${disk.path}${disk.readOnly ? ',readonly=on' : ''}`);
    args.push('-device', `virtio-blk-device,drive=disk${i},serial=${disk.serial}`);
  });
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`QEMU did not stop within ${options.timeoutMs ?? BOOT_TIMEOUT_MS} ms; hvc0 so far:\n${output.slice(-3000)}\nttyS0:\n${existsSync(serialLog) ? readFileSync(serialLog, 'utf8').slice(-3000) : ''}`));
    }, options.timeoutMs ?? BOOT_TIMEOUT_MS);
    const send = (text: string) => child.stdin.write(text);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('latin1');
      options.onOutput?.(output, send);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      const serial = existsSync(serialLog) ? readFileSync(serialLog, 'latin1') : '';
      if (stderr.trim()) console.warn(`[qemu stderr] ${stderr.trim()}`);
      resolve({ output, serial, status, seconds: (Date.now() - started) / 1000 });
    });
  });
}

describe.skipIf(!hasQemu)('guest artifacts boot under QEMU TCG (reference emulator, not hype)', () => {
  let kernel: KernelArtifacts;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hype-qemu-'));
    const started = Date.now();
    kernel = await ensureKernel({ onProgress: (p) => console.log(`[hype guest kernel] ${p.phase}: ${p.message}`) });
    if (!kernel.cached) console.log(`[hype guest kernel] built in ${Math.round((Date.now() - started) / 1000)} s`);
  }, 60 * 60_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'test mode: boot, console, blk (vda ext4 rw, vdb read-only, vdc raw), smp and rng checks all pass in one boot',
    async () => {
      const initrd = join(dir, 'initrd-test.cpio');
      writeInitrd(initrd, { init: 'test' });
      const disks: TestDisks = prepareTestDisks(join(dir, 'disks'));
      const hostLine = 'hello from the host: 0123456789 ~!@#$%^&*()_+ end';
      let answered = false;
      const result = await runQemu(dir, {
        kernel: kernel.bzImage,
        initrd,
        cpus: 2,
        append: `${CMDLINE} ${guestTestCmdline(['all'], { cpus: 2 })}`,
        disks: [
          { path: disks.vda, serial: 'hype-vda' },
          { path: disks.vdb, serial: 'hype-vdb', readOnly: true },
          { path: disks.vdc, serial: 'hype-vdc' },
        ],
        onOutput: (output, send) => {
          if (!answered && output.includes(`${CONSOLE_READY}\n`)) {
            answered = true;
            send(`${hostLine}\n`);
          }
        },
      });
      console.log(`[qemu] test-mode boot + checks: ${result.seconds.toFixed(1)} s`);
      const report = parseGuestTestOutput(result.output);
      const summary = report.results.map((r) => `${r.name} ${r.status} ${r.detail}`).join('\n');
      console.log(summary);
      const context = `hvc0:\n${result.output.slice(-4000)}\nttyS0:\n${result.serial.slice(-4000)}`;

      expect(report.done, context).toEqual({ pass: 7, fail: 0 });
      expect(report.results.map((r) => [r.name, r.status]), context).toEqual([
        ['boot', 'PASS'],
        ['console', 'PASS'],
        ['blk.vda', 'PASS'],
        ['blk.vdb', 'PASS'],
        ['blk.vdc', 'PASS'],
        ['smp', 'PASS'],
        ['rng.virtio_rng.0', 'PASS'],
      ]);
      // poweroff 0 through port 0xf4 -> QEMU exits with (0 << 1) | 1.
      expect(result.status).toBe(1);

      const buildInfo = JSON.parse(readFileSync(join(kernel.dir, 'build.json'), 'utf8'));
      const fields = Object.fromEntries(report.results.map((r) => [r.name, resultFields(r)]));
      expect(fields.boot.kernel).toBe(buildInfo.kernelRelease);
      expect(result.serial).toContain(`Linux version ${buildInfo.kernelRelease}`);

      // Console: the exact bytes on hvc0 (no \r inserted), and the host's line echoed back.
      expect(result.output).toContain(consoleTestTranscript());
      expect(report.consoleText).toBe(consoleTestText());
      expect(report.consoleEcho).toBe(hostLine);

      // Disks: in the attach order, with their serials; then the host's side of each check.
      expect([fields['blk.vda'].serial, fields['blk.vdb'].serial, fields['blk.vdc'].serial]).toEqual(['hype-vda', 'hype-vdb', 'hype-vdc']);
      expect(fields['blk.vdb']).toMatchObject({ ro: '1', 'write-accepted': 'no', intact: 'yes' });
      expect(verifyTestDisks(disks)).toEqual([]);

      // SMP: both CPUs came up (MP table, APs started).
      expect(fields.smp).toMatchObject({ nproc: '2', expected: '2', online: '0-1', jobs: '2999997,2999997' });

      // Entropy: QEMU's virtio-rng reached /dev/hwrng with random bytes.
      expect(fields['rng.virtio_rng.0'].bytes).toBe('4096');
      expect(Number(fields['rng.virtio_rng.0'].distinct)).toBeGreaterThan(200);
    },
    BOOT_TIMEOUT_MS + 60_000,
  );

  it(
    'shell mode: banner, a shell with job control on hvc0, and `poweroff 7` ends the VM with status 7',
    async () => {
      const initrd = join(dir, 'initrd-shell.cpio');
      writeInitrd(initrd, { init: 'shell' });
      const steps = [
        { when: 'Leave with', send: 'tty; sleep 30 & jobs; kill %1; echo "CPUS-$(nproc)"\n' },
        { when: 'CPUS-', send: 'poweroff 7\n' },
      ];
      const result = await runQemu(dir, {
        kernel: kernel.bzImage,
        initrd,
        append: CMDLINE,
        timeoutMs: SHELL_TIMEOUT_MS,
        onOutput: (output, send) => {
          const step = steps[0];
          if (step && output.includes(step.when)) {
            steps.shift();
            send(step.send);
          }
        },
      });
      console.log(`[qemu] shell-mode boot + session: ${result.seconds.toFixed(1)} s`);
      const context = `hvc0:\n${result.output.slice(-3000)}`;
      expect(result.output, context).toMatch(/hype guest: Linux \S+ x86_64, 1 CPU\(s\), \d+ MiB/);
      expect(result.output, context).not.toContain('job control turned off');
      expect(result.output, context).toContain('/dev/hvc0');
      expect(result.output, context).toMatch(/\[1\]\+ +Running +sleep 30/);
      expect(result.output, context).toContain('CPUS-1');
      expect(steps, context).toEqual([]);
      expect(result.status).toBe((7 << 1) | 1);
    },
    SHELL_TIMEOUT_MS + 60_000,
  );
});
