/**
 * Guest tests (ring 3): boot hype's default guest kernel with the test initrd on /dev/kvm and run the
 * guest-side checks (guest/rootfs/usr/lib/hype/run-tests) in as few boots as possible:
 *   1. virtio console on hvc0, three virtio-blk disks, two virtio-rng devices (EntropyDevice, and one
 *      defined in this file), virtio-vsock with the guest agent, 2 vCPUs: boot, console, blk (vda ext4
 *      rw, vdb read-only, vdc raw), smp, rng, agent (the host drives the agent meanwhile:
 *      helpers/agent-checks.ts), virtio-net through passt (DHCP, a download from the host's loopback,
 *      a published port: helpers/net-checks.ts, through the agent); the host then verifies the disk
 *      images byte for byte.
 *   2. the 8250 console (ttyS0), 1 vCPU: boot only, so the serial path carries a whole boot too.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CONSOLE_READY,
  consoleTestText,
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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceId, type ActivationContext, type SplitQueue, type VirtioDevice } from '@hype/virtio';
import { openDiskDevice, type DiskSpec } from '@hype/virtio-blk/node';
import { DEFAULT_AGENT_PORT } from '@hype/guest-agent';
import { VirtioNetDevice } from '@hype/virtio-net';
import { Kvm, KvmCap } from '@hype/kvm';
import { startPasst } from '@hype/virtio-net/node';
import { EntropyDevice } from '@hype/virtio-rng';
import { VsockDevice } from '@hype/virtio-vsock';
import { createVm, describeExit, type Machine, type TimingEvent, type VmConfig, type VmExit } from '@hype/vm';
import { runAgentChecks, type AgentCheckReport } from './helpers/agent-checks.js';

const hasKvm = existsSync('/dev/kvm');
if (!hasKvm) console.warn('[hype] /dev/kvm absent on this host: skipping KVM guest tests in packages/vm/test/guest-boot.test.ts');

const BOOT_TIMEOUT_MS = 10 * 60_000;

interface BootResult {
  exit: VmExit;
  output: string;
  timings: TimingEvent[];
  seconds: number;
}

async function boot(
  config: VmConfig,
  onOutput?: (output: string, send: (text: string) => void) => void,
  onCreated?: (vm: Machine) => void,
): Promise<BootResult> {
  const started = performance.now();
  let output = '';
  const timings: TimingEvent[] = [];
  const decoder = new TextDecoder();
  const vm = await createVm(config, {
    consoleOutput: (bytes) => {
      output += decoder.decode(bytes, { stream: true });
      onOutput?.(output, (text) => vm.writeConsole(new TextEncoder().encode(text)));
    },
    onTiming: (t) => timings.push(t),
  });
  const timer = setTimeout(() => vm.stop(`no poweroff within ${BOOT_TIMEOUT_MS / 1000} s`), BOOT_TIMEOUT_MS);
  onCreated?.(vm);
  try {
    const exit = await vm.run();
    return { exit, output, timings, seconds: (performance.now() - started) / 1000 };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A device from outside hype's packages, written against @hype/virtio's public interface only (the
 * README's example): a virtio-rng that serves a counting pattern, 0, 1, 2, ... mod 256, so the host can
 * recognise its bytes in the guest's /dev/hwrng.
 */
class CountingRng implements VirtioDevice {
  readonly deviceType = DeviceId.RNG;
  readonly name = 'counting-rng';
  readonly deviceFeatures = 0n;
  readonly queueMaxSizes = [64];
  readonly configSize = 0;
  private queue: SplitQueue | undefined;
  private next = 0;

  attach(): void {}
  readConfig(): void {}
  writeConfig(): void {}
  activate(ctx: ActivationContext): void {
    this.queue = ctx.queues[0];
  }
  processQueue(): void {
    const queue = this.queue;
    if (!queue) return;
    // At most one ring's worth per notification; the guest notifies again for more.
    for (let n = 0; n < this.queueMaxSizes[0]; n++) {
      const chain = queue.popChain();
      if (!chain) break;
      const writer = chain.writer();
      const bytes = new Uint8Array(Math.min(writer.remaining, 4096));
      for (let i = 0; i < bytes.length; i++) bytes[i] = this.next++ & 0xff;
      queue.addUsed(chain, writer.write(bytes));
    }
    queue.interruptIfNeeded();
  }
  reset(): void {
    this.queue = undefined;
  }
}

/** 16 bytes, as hex, that count up by one (mod 256) from whatever the first is. */
/** A TCP port nothing listens on right now (for a published port). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function isCountingRun(hex: string): boolean {
  const bytes = hex.match(/../g)?.map((b) => parseInt(b, 16)) ?? [];
  return bytes.length === 16 && bytes.every((b, i) => i === 0 || b === ((bytes[i - 1] + 1) & 0xff));
}

function timeToInit(r: BootResult): string {
  const created = r.timings.find((t) => t.event === 'first-kvm-run');
  const marker = r.timings.find((t) => t.event === 'boot-marker' && t.value === 1);
  return created && marker ? `${((marker.ms - created.ms) / 1000).toFixed(2)} s from first KVM_RUN to /init` : 'no /init marker';
}

describe.skipIf(!hasKvm)('the default guest on hype', () => {
  let dir: string;
  let kernel: KernelArtifacts;
  let initrd: string;
  let shellInitrd: string;
  let disks: TestDisks;

  beforeAll(async () => {
    kernel = await ensureKernel({ onProgress: (p) => console.log(`[guest build] ${p.phase}: ${p.message}`) });
    dir = mkdtempSync(join(tmpdir(), 'hype-guest-test-'));
    initrd = join(dir, 'initrd.cpio');
    writeInitrd(initrd, { init: 'test' });
    shellInitrd = join(dir, 'initrd-shell.cpio');
    writeInitrd(shellInitrd, { init: 'shell' });
    disks = prepareTestDisks(dir);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'boots to /init with hvc0, 3 disks, 2 entropy devices (one from outside the packages) and 2 vCPUs; every check passes; flushed data is on disk',
    async () => {
      const diskList: DiskSpec[] = [
        { kind: 'file', path: disks.vda },
        { kind: 'file', path: disks.vdb, readOnly: true },
        { kind: 'file', path: disks.vdc },
      ];
      const devices: VirtioDevice[] = [];
      for (const [index, spec] of diskList.entries()) devices.push(await openDiskDevice(spec, index));
      const vsock = new VsockDevice();
      // User-mode networking through passt, with the guest's port 8080 published on a free host port.
      const hostPort = await freePort();
      const nic = new VirtioNetDevice({ backend: await startPasst({ publish: [{ protocol: 'tcp', hostPort, guestPort: 8080, hostAddress: '127.0.0.1' }] }) });
      devices.push(new EntropyDevice(), new CountingRng(), nic, vsock);
      const echoLine = `hello from the host ${Date.now()}`;
      let answered = false;
      let agentChecks: Promise<AgentCheckReport> | undefined;
      const r = await boot(
        {
          kernel: kernel.vmlinux,
          initrd,
          cmdline: guestTestCmdline(['all', 'agent'], { cpus: 2 }),
          memMiB: 256,
          cpus: 2,
          devices,
          console: 'hvc',
          agent: () => vsock.connect(DEFAULT_AGENT_PORT),
        },
        (output, send) => {
          if (!answered && output.includes(CONSOLE_READY)) {
            answered = true;
            send(`${echoLine}\n`);
          }
        },
        (vm) => {
          agentChecks = runAgentChecks(vm, vsock, dir, { hostPort, guestPort: 8080 });
          agentChecks.catch(() => {}); // awaited below, after the VM ended
        },
      );
      console.log(`[hype] guest boot: ${timeToInit(r)}; whole run ${r.seconds.toFixed(1)} s`);
      // A failed host half shows the guest's side too (the console says why the guest went away).
      const agentReport = await agentChecks!.catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\nguest console:\n${r.output.slice(-6000)}`, { cause: error });
      });
      console.log(`[hype] agent checks (ms per step): ${JSON.stringify(agentReport.steps)}`);
      const report = parseGuestTestOutput(r.output);
      const failed = report.results.filter((t) => t.status === 'FAIL');
      expect(failed, `${r.output}\n${report.dmesg.join('\n')}`).toEqual([]);
      expect(r.exit, describeExit(r.exit)).toEqual({ kind: 'poweroff', status: 0 });
      expect(report.done).toEqual({ pass: report.results.length, fail: 0 });
      const names = report.results.map((t) => t.name);
      for (const name of ['boot', 'console', 'blk.vda', 'blk.vdb', 'blk.vdc', 'smp', 'agent']) expect(names).toContain(name);
      expect(resultFields(report.results.find((t) => t.name === 'agent')!).agents, 'hype-agent still running').not.toBe('0');
      // Both entropy devices reached /dev/hwrng: the counting one by its pattern, EntropyDevice by its spread.
      const rngs = report.results.filter((t) => t.name.startsWith('rng.')).map((t) => resultFields(t));
      expect(rngs.map((f) => f.bytes), r.output).toEqual(['4096', '4096']);
      expect(rngs.filter((f) => isCountingRun(f.first16)).length, r.output).toBe(1);
      const random = rngs.find((f) => !isCountingRun(f.first16))!;
      expect(Number(random.distinct), r.output).toBeGreaterThan(200);
      expect(resultFields(report.results.find((t) => t.name === 'boot')!).kernel).toMatch(/^6\.1\./);
      expect(report.consoleText).toBe(consoleTestText());
      expect(report.consoleEcho).toBe(echoLine);
      expect(resultFields(report.results.find((t) => t.name === 'smp')!).nproc).toBe('2');
      expect(verifyTestDisks(disks)).toEqual([]);
    },
    BOOT_TIMEOUT_MS + 60_000,
  );

  it(
    'stop() from the host ends a 2-vCPU guest sitting in its shell: every vCPU thread ends',
    async () => {
      let vmRef: Awaited<ReturnType<typeof createVm>> | undefined;
      const vm = await createVm(
        { kernel: kernel.vmlinux, initrd: shellInitrd, memMiB: 128, cpus: 2, console: 'hvc' },
        {
          consoleOutput: () => {},
          onTiming: (t) => {
            if (t.event === 'boot-marker' && t.value === 1) setTimeout(() => vmRef?.stop('test stop'), 2000);
          },
        },
      );
      vmRef = vm;
      const timer = setTimeout(() => vm.stop('timeout'), BOOT_TIMEOUT_MS);
      const exit = await vm.run();
      clearTimeout(timer);
      expect(exit).toEqual({ kind: 'stopped', reason: 'test stop' });
    },
    BOOT_TIMEOUT_MS + 60_000,
  );

  it(
    'boots to /init on the 8250 console (ttyS0) and powers off',
    async () => {
      const r = await boot({
        kernel: kernel.bzImage,
        initrd,
        cmdline: guestTestCmdline(['boot']),
        memMiB: 128,
        cpus: 1,
        console: 'serial',
      });
      console.log(`[hype] serial-console boot: ${timeToInit(r)}; whole run ${r.seconds.toFixed(1)} s`);
      const report = parseGuestTestOutput(r.output);
      expect(report.results.map((t) => `${t.name} ${t.status}`), r.output).toEqual(['boot PASS']);
      expect(r.exit, describeExit(r.exit)).toEqual({ kind: 'poweroff', status: 0 });
      expect(r.timings.some((t) => t.event === 'boot-marker' && t.value === 1)).toBe(true);
      // createVm's steps, then the run's first entry, in order on one clock.
      const first = r.timings.slice(0, 5);
      expect(first.map((t) => t.event)).toEqual(['vm-ram', 'vm-devices', 'vm-loaded', 'vm-created', 'first-kvm-run']);
      expect(first.every((t, k) => k === 0 || t.ms >= first[k - 1].ms)).toBe(true);
      // The kernel's console output arrives whole and in order, most of it as posted writes (no exits).
      const order = ['Linux version', 'Serial: 8250/16550 driver', 'Run /init as init process', 'HYPE-TEST boot PASS', 'HYPE-TEST-DONE'];
      const at = order.map((line) => r.output.indexOf(line));
      expect(at.every((i) => i >= 0) && at.every((i, k) => k === 0 || i > at[k - 1]), r.output).toBe(true);
      const exits = r.timings.find((t) => t.event === 'exit')?.exits;
      using kvm = Kvm.open();
      if (kvm.checkExtension(KvmCap.COALESCED_PIO) > 0 && process.env.HYPE_COALESCED_PIO !== '0') {
        expect(exits?.coalesced, JSON.stringify(exits)).toBeGreaterThan(2_000);
        expect(exits!.uart, JSON.stringify(exits)).toBeLessThan(exits!.coalesced / 4);
      }
    },
    BOOT_TIMEOUT_MS + 60_000,
  );
});
