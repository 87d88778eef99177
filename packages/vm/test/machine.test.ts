import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ByteBatcher, InputQueue, MAX_VIRTIO_DEVICES, VmInputError, baseCmdline, createVm, joinCmdline, type VmConfig } from '@hype/vm';

describe('console plumbing', () => {
  it('ByteBatcher hands bytes on in one chunk per event-loop turn, in order', async () => {
    const chunks: number[][] = [];
    const b = new ByteBatcher((bytes) => chunks.push([...bytes]));
    for (let i = 0; i < 1000; i++) b.push(i & 0xff);
    expect(chunks).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(chunks.length).toBe(1);
    expect(chunks[0]).toEqual(Array.from({ length: 1000 }, (_, i) => i & 0xff));
    b.push(7);
    await new Promise((r) => setImmediate(r));
    expect(chunks[1]).toEqual([7]);
  });

  it('InputQueue feeds a receiver with limited room without losing or reordering bytes', () => {
    const received: number[] = [];
    let room = 3;
    const q = new InputQueue((bytes) => {
      const n = Math.min(room, bytes.length);
      received.push(...bytes.subarray(0, n));
      room -= n;
      return n;
    });
    q.write(Uint8Array.of(1, 2, 3, 4, 5));
    q.write(Uint8Array.of(6, 7));
    expect(received).toEqual([1, 2, 3]);
    expect(q.buffered).toBe(4);
    room = 2;
    q.feed();
    expect(received).toEqual([1, 2, 3, 4, 5]);
    room = 10;
    q.feed();
    expect(received).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(q.buffered).toBe(0);
  });
});

describe('kernel command line', () => {
  it('names the console, reboots through the i8042 and panics into a reboot', () => {
    expect(baseCmdline('hvc')).toBe('console=hvc0 reboot=k panic=-1 8250.nr_uarts=1');
    expect(baseCmdline('serial')).toBe('console=ttyS0 reboot=k panic=-1 8250.nr_uarts=1');
  });
  it('joins parts, skipping empty ones', () => {
    expect(joinCmdline('a', '', undefined, '  b c ', 'd')).toBe('a b c d');
  });
});

describe('createVm input errors (no KVM needed)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hype-machine-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const kernel = join(dir, 'bzImage');
  writeFileSync(kernel, 'not a kernel');
  const config: VmConfig = { kernel, memMiB: 64, cpus: 1, console: 'hvc' };

  it('reports a missing KVM device in one line naming it, as an input error', async () => {
    const error = await createVm(config, { consoleOutput: () => {}, kvmDevice: join(dir, 'kvm') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmInputError);
    expect((error as VmInputError).code).toBe('ERR_HYPE_INPUT');
    expect((error as Error).message).toBe(
      `${join(dir, 'kvm')} not found: this host has no KVM (load kvm_intel/kvm_amd or run on a host with virtualization)`,
    );
  });

  it('reports a device that is not KVM as an input error naming it', async () => {
    const error = await createVm(config, { consoleOutput: () => {}, kvmDevice: '/dev/null' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmInputError);
    expect((error as Error).message).toMatch(/^\/dev\/null is not a KVM device \(ioctl KVM_GET_API_VERSION failed: ENOTTY/);
  });

  /** A device that only counts close() calls: createVm fails before any transport touches it. */
  const closable = () => ({
    deviceType: 4,
    deviceFeatures: 0n,
    queueMaxSizes: [8],
    configSize: 0,
    closed: 0,
    attach() {},
    readConfig() {},
    writeConfig() {},
    activate() {},
    processQueue() {},
    reset() {},
    close() {
      this.closed++;
    },
  });

  it('owns the devices it was given: closes each once when it fails', async () => {
    const devices = [closable(), closable()];
    const error = await createVm({ ...config, devices }, { consoleOutput: () => {}, kvmDevice: join(dir, 'kvm') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmInputError);
    expect((error as VmInputError).kind).toBe('kvm-device');
    expect(devices.map((d) => d.closed)).toEqual([1, 1]);
  });

  it('rejects the same device listed twice, and more devices than virtio slots, as device input errors', async () => {
    const device = closable();
    const twice = await createVm({ ...config, devices: [device, device] }, { consoleOutput: () => {} }).catch((e: unknown) => e);
    expect(twice).toMatchObject({ kind: 'device', message: 'the same device object is listed twice in devices (each needs its own instance)' });
    expect(device.closed).toBe(1);
    const many = Array.from({ length: MAX_VIRTIO_DEVICES }, closable);
    const tooMany = await createVm({ ...config, devices: many }, { consoleOutput: () => {} }).catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(VmInputError);
    expect((tooMany as Error).message).toBe(
      `${MAX_VIRTIO_DEVICES} virtio devices: at most ${MAX_VIRTIO_DEVICES - 1} (${MAX_VIRTIO_DEVICES} virtio-mmio slots, one taken by the virtio console)`,
    );
    expect(many.every((d) => d.closed === 1)).toBe(true);
  });

  it('rejects a vCPU count out of range before touching KVM', async () => {
    await expect(createVm({ ...config, cpus: 9 }, { consoleOutput: () => {} })).rejects.toThrow('cpus 9: use a whole number from 1 to 8');
    await expect(createVm({ ...config, cpus: 9 }, { consoleOutput: () => {} })).rejects.toBeInstanceOf(VmInputError);
    await expect(createVm({ ...config, cpus: 0 }, { consoleOutput: () => {} })).rejects.toThrow('cpus 0');
  });

  it('rejects a memory size that is not a whole number of MiB', async () => {
    await expect(createVm({ ...config, memMiB: 0.5 }, { consoleOutput: () => {} })).rejects.toThrow('memory 0.5 MiB');
  });
});
