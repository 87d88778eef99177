import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InternalErrorReport, VcpuRegs, VcpuSegment, VcpuSregs, VmExit } from '@hype/vm';
import { decideExit } from '../src/exit-codes.js';
import { UsageError } from '../src/usage-error.js';
import { fromVmExit, openDevices } from '../src/vm-adapter.js';

const segment = (selector: number): VcpuSegment => ({
  base: 0n, limit: 0xffffffff, selector, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0,
});
const regs = Object.fromEntries(
  ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'].map((r) => [r, 0n]),
) as unknown as VcpuRegs;
const sregs: VcpuSregs = {
  cs: segment(0x10), ds: segment(0x18), es: segment(0x18), fs: segment(0x18), gs: segment(0x18), ss: segment(0x18),
  tr: segment(0x20), ldt: segment(0), gdt: { base: 0x500n, limit: 0x2f }, idt: { base: 0n, limit: 0 },
  cr0: 0x80000011n, cr2: 0n, cr3: 0x9000n, cr4: 0x20n, cr8: 0n, efer: 0xd01n, apicBase: 0xfee00900n,
};
const report: InternalErrorReport = {
  suberror: 1,
  data: [],
  insnAddress: 0xffffffff81000500n,
  insnBytes: Uint8Array.of(0x0f, 0x01, 0xd0),
  insnSource: 'kvm',
  regs: { ...regs, rip: 0xffffffff81000500n, rax: 0xdeadn },
  sregs,
};

describe('fromVmExit: @hype/vm exit reasons -> exit codes', () => {
  it.each<[VmExit, number]>([
    [{ kind: 'poweroff', status: 0 }, 0],
    [{ kind: 'poweroff', status: 9 }, 1],
    [{ kind: 'reboot', source: 'i8042' }, 3],
    [{ kind: 'reboot', source: 'system-event' }, 3],
    [{ kind: 'shutdown', vcpu: 1 }, 4],
    [{ kind: 'internal-error', vcpu: 0, report }, 5],
  ])('%# %o -> exit %i', (exit, code) => {
    expect(decideExit(fromVmExit(exit)).code).toBe(code);
  });

  it('a stop the CLI asked for keeps the cause (signal code)', () => {
    expect(decideExit(fromVmExit({ kind: 'stopped', reason: 'x' }), { kind: 'signal', signal: 'SIGTERM' }).code).toBe(143);
  });

  it('an internal error: one line with the instruction, then the register dump', () => {
    const outcome = fromVmExit({ kind: 'internal-error', vcpu: 0, report });
    expect(outcome).toMatchObject({
      kind: 'internal-error',
      message: 'vCPU 0: KVM internal error (instruction emulation failed) at ffffffff81000500: 0f 01 d0',
    });
    const detail = (outcome as { detail: string }).detail;
    expect(detail).toContain('instruction at ffffffff81000500: 0f 01 d0 (from KVM)');
    expect(detail).toContain('RAX=000000000000dead');
    expect(detail).toContain('RIP=ffffffff81000500');
  });
});

describe('openDevices: the disks in order, then the entropy device; a disk that does not open is a UsageError', () => {
  const base = { kernel: 'k', memMiB: 64, cpus: 1, console: 'hvc' as const, nics: [] };
  const logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

  it('disks first (vda, vdb), EntropyDevice last unless --rng off', async () => {
    const devices = await openDevices({ ...base, disks: [{ kind: 'memory', sizeBytes: 1 << 20 }, { kind: 'memory', sizeBytes: 2 << 20 }], rng: true }, logger);
    expect(devices.map((d) => d.constructor.name)).toEqual(['VirtioBlkDevice', 'VirtioBlkDevice', 'EntropyDevice']);
    expect(devices.map((d) => d.name)).toEqual(['virtio-blk hype-disk-0', 'virtio-blk hype-disk-1', 'virtio-rng']);
    for (const device of devices) await device.close?.();
    expect(await openDevices({ ...base, disks: [], rng: false }, logger)).toEqual([]);
  });

  it('a disk that does not open: one UsageError naming it, with the cause', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hype-adapter-'));
    try {
      const error = await openDevices({ ...base, disks: [{ kind: 'memory', sizeBytes: 1 << 20 }, { kind: 'file', path: join(dir, 'missing.img') }], rng: true }, logger).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toBe(`disk ${join(dir, 'missing.img')}: no such file (create the image first, e.g. with mke2fs or truncate)`);
      expect((error as Error).cause).toBeInstanceOf(Error);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openDevices: network interfaces after the entropy device, each failure a UsageError naming --net', () => {
  const base = { kernel: 'k', memMiB: 64, cpus: 1, console: 'hvc' as const, disks: [], rng: true };
  const logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

  it('a user network whose published port is taken: a UsageError naming the --publish spec', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const error = await openDevices({ ...base, nics: [{ kind: 'user', publish: [{ protocol: 'tcp', hostPort: port, guestPort: 80 }] }] }, logger).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toBe(`--publish ${port}:80: host tcp port ${port} is in use; choose another host port`);
    } finally {
      server.close();
    }
  });
});
