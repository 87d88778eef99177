import { describe, expect, it } from 'vitest';
import { Feature, Status, featureMask } from '../src/features.js';
import { ArrayGuestMemory } from '../src/memory.js';
import { MMIO_MAGIC_VALUE, MmioInterrupt, MmioReg } from '../src/mmio-registers.js';
import { MmioTransport } from '../src/mmio.js';
import type { QueueLayout } from '../src/queue.js';
import { DescFlag } from '../src/ring-layout.js';
import { DriverQueue, bringUp, readDeviceFeatures, setupQueue, writeDriverFeatures } from '../src/testing/index.js';
import { RecordingDevice } from './recording-device.js';
import { DATA } from './setup.js';

const q0: QueueLayout = { size: 16, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000 };
const q1: QueueLayout = { size: 8, descAddr: 0x4000, availAddr: 0x5000, usedAddr: 0x6000 };
const VERSION_1 = featureMask(Feature.VERSION_1);

function setup(deviceOptions: ConstructorParameters<typeof RecordingDevice>[0] = {}, transportOptions: { eventIdx?: boolean; indirectDescriptors?: boolean } = {}) {
  const ram = new Uint8Array(0x10000);
  const memory = new ArrayGuestMemory(ram);
  const device = new RecordingDevice(deviceOptions);
  const irq: boolean[] = [];
  const warnings: string[] = [];
  const transport = new MmioTransport(device, {
    memory,
    interrupt: (level) => irq.push(level),
    log: { warn: (m) => warnings.push(m) },
    ...transportOptions,
  });
  const status = () => transport.read(MmioReg.STATUS, 4);
  const w = (reg: number, value: number) => transport.write(reg, 4, value);
  return { ram, memory, device, transport, irq, warnings, status, w };
}

describe('virtio-mmio: identification and features', () => {
  it('identifies as a version 2 virtio-mmio device', () => {
    const { transport } = setup({ deviceType: 3 });
    expect(transport.read(MmioReg.MAGIC_VALUE, 4)).toBe(MMIO_MAGIC_VALUE);
    expect(transport.read(MmioReg.VERSION, 4)).toBe(2);
    expect(transport.read(MmioReg.DEVICE_ID, 4)).toBe(3);
    expect(transport.read(MmioReg.VENDOR_ID, 4)).toBe(0);
  });

  it('offers device bits, VERSION_1, INDIRECT_DESC and EVENT_IDX, 32 bits per selector word', () => {
    const { transport, w } = setup({ features: 0b101n | featureMask(Feature.RING_PACKED) | featureMask(45) });
    const offered = readDeviceFeatures(transport);
    expect(offered).toBe(0b101n | VERSION_1 | featureMask(Feature.RING_INDIRECT_DESC) | featureMask(Feature.RING_EVENT_IDX) | featureMask(45));
    w(MmioReg.DEVICE_FEATURES_SEL, 2);
    expect(transport.read(MmioReg.DEVICE_FEATURES, 4)).toBe(0);
    w(MmioReg.DEVICE_FEATURES_SEL, 0xffff_ffff);
    expect(transport.read(MmioReg.DEVICE_FEATURES, 4)).toBe(0);
  });

  it('ring features can be turned off', () => {
    const { transport } = setup({}, { eventIdx: false, indirectDescriptors: false });
    expect(readDeviceFeatures(transport)).toBe(VERSION_1);
  });
});

describe('virtio-mmio: status state machine and feature negotiation', () => {
  it('brings a device up the way Linux does and activates it with the negotiated features', () => {
    const { transport, device } = setup({ features: 0b11n });
    const status = bringUp(transport, [q0, q1], (offered) => offered & ~0b10n);
    expect(status).toBe(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    expect(device.activations).toBe(1);
    expect(device.context?.features).toBe(0b01n | VERSION_1 | featureMask(Feature.RING_INDIRECT_DESC) | featureMask(Feature.RING_EVENT_IDX));
    expect(device.context?.queues.map((q) => q?.size)).toEqual([16, 8]);
    expect(device.context?.queues[0]?.eventIdx).toBe(true);
    expect(transport.isActive).toBe(true);
  });

  it('refuses FEATURES_OK without VIRTIO_F_VERSION_1 (legacy driver)', () => {
    const { transport, device, warnings } = setup();
    const status = bringUp(transport, [q0, q1], (offered) => offered & ~VERSION_1);
    expect(status & Status.FEATURES_OK).toBe(0);
    expect(device.activations).toBe(0);
    expect(warnings.some((m) => m.includes('VIRTIO_F_VERSION_1'))).toBe(true);
  });

  it('refuses FEATURES_OK when the driver accepts a feature that was not offered', () => {
    const { transport } = setup({ features: 0b1n });
    expect(bringUp(transport, [q0, q1], (offered) => offered | 0b100n) & Status.FEATURES_OK).toBe(0);
  });

  it("refuses FEATURES_OK when the device's own check says no", () => {
    const { transport, device } = setup({ features: 0b11n });
    device.acceptFeatures = (f) => (f & 0b10n) === 0n;
    expect(bringUp(transport, [q0, q1]) & Status.FEATURES_OK).toBe(0);
    expect(bringUp(transport, [q0, q1], (o) => o & ~0b10n) & Status.DRIVER_OK).toBe(Status.DRIVER_OK);
  });

  it('ignores DriverFeatures writes before DRIVER and after FEATURES_OK', () => {
    const { transport, w, status } = setup({ features: 0b11n });
    writeDriverFeatures(transport, VERSION_1 | 1n); // status 0: ignored
    expect(transport.driverFeatures).toBe(0n);
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    writeDriverFeatures(transport, VERSION_1 | 1n);
    w(MmioReg.STATUS, status() | Status.FEATURES_OK);
    writeDriverFeatures(transport, VERSION_1 | 3n);
    expect(transport.driverFeatures).toBe(VERSION_1 | 1n);
  });

  it('ignores status writes that skip a step, clear bits, or carry unknown bits', () => {
    const { w, status } = setup();
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.FEATURES_OK);
    expect(status()).toBe(0);
    w(MmioReg.STATUS, Status.DRIVER_OK);
    expect(status()).toBe(0);
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    w(MmioReg.STATUS, Status.ACKNOWLEDGE);
    expect(status()).toBe(Status.ACKNOWLEDGE | Status.DRIVER);
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | 0x10);
    expect(status()).toBe(Status.ACKNOWLEDGE | Status.DRIVER);
    // DRIVER_OK without FEATURES_OK is a skipped step.
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
    expect(status()).toBe(Status.ACKNOWLEDGE | Status.DRIVER);
  });

  it('FAILED alone is accepted at any step', () => {
    const { w, status } = setup();
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    w(MmioReg.STATUS, Status.FAILED);
    expect(status()).toBe(Status.ACKNOWLEDGE | Status.DRIVER | Status.FAILED);
  });

  it('DRIVER_OK does not activate a device that already needs a reset', () => {
    const { transport, device, w, status } = setup();
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    writeDriverFeatures(transport, readDeviceFeatures(transport));
    w(MmioReg.STATUS, status() | Status.FEATURES_OK);
    setupQueue(transport, 0, q0);
    device.host!.needsReset('backend failed to open');
    w(MmioReg.STATUS, status() | Status.DRIVER_OK);
    expect(device.activations).toBe(0);
    expect(transport.isActive).toBe(false);
  });

  it('FAILED is recorded and stops the device until reset', () => {
    const { transport, device, w, status } = setup();
    bringUp(transport, [q0, q1]);
    w(MmioReg.STATUS, status() | Status.FAILED);
    expect(status() & Status.FAILED).toBe(Status.FAILED);
    expect(transport.isActive).toBe(false);
    transport.notify(0);
    expect(device.processed).toEqual([]);
    w(MmioReg.STATUS, 0);
    expect(status()).toBe(0);
  });

  it('writing 0 resets: status, features, queues, interrupt line, and the device', () => {
    const { transport, device, w, status, irq } = setup();
    bringUp(transport, [q0, q1]);
    const oldQueue = device.context!.queues[0]!;
    device.host!.configChanged();
    expect(transport.interruptStatus).toBe(MmioInterrupt.CONFIG);
    const resetsBefore = device.resets; // bringUp itself starts with a reset
    w(MmioReg.STATUS, 0);
    expect(status()).toBe(0);
    expect(device.resets).toBe(resetsBefore + 1);
    expect(oldQueue.isLive).toBe(false);
    expect(transport.driverFeatures).toBe(0n);
    expect(transport.interruptStatus).toBe(0);
    expect(irq.at(-1)).toBe(false);
    w(MmioReg.QUEUE_SEL, 0);
    expect(transport.read(MmioReg.QUEUE_READY, 4)).toBe(0);
    // And it comes back up.
    expect(bringUp(transport, [q0, q1]) & Status.DRIVER_OK).toBe(Status.DRIVER_OK);
    expect(device.activations).toBe(2);
  });
});

describe('virtio-mmio: queue setup checks', () => {
  it('QueueNumMax per queue, 0 for queues that do not exist', () => {
    const { transport, w } = setup({ queueMaxSizes: [256, 64] });
    w(MmioReg.QUEUE_SEL, 1);
    expect(transport.read(MmioReg.QUEUE_NUM_MAX, 4)).toBe(64);
    w(MmioReg.QUEUE_SEL, 2);
    expect(transport.read(MmioReg.QUEUE_NUM_MAX, 4)).toBe(0);
    expect(transport.read(MmioReg.QUEUE_READY, 4)).toBe(0);
  });

  it('queue registers are ignored before FEATURES_OK', () => {
    const { transport, w, warnings } = setup();
    setupQueue(transport, 0, q0);
    expect(transport.read(MmioReg.QUEUE_READY, 4)).toBe(0);
    expect(warnings.some((m) => m.includes('allowed after FEATURES_OK'))).toBe(true);
    w(MmioReg.QUEUE_SEL, 0);
  });

  it('queue registers are ignored while the queue is ready and after DRIVER_OK', () => {
    const { transport, device, w } = setup();
    bringUp(transport, [q0, q1]);
    w(MmioReg.QUEUE_SEL, 0);
    w(MmioReg.QUEUE_NUM, 4);
    w(MmioReg.QUEUE_DESC_LOW, 0x8000);
    expect(device.context!.queues[0]!.layout).toEqual(q0);
    // Reset, then: ready queue registers frozen even before DRIVER_OK.
    const { transport: t2, device: d2, status, w: w2 } = setup();
    w2(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    writeDriverFeatures(t2, readDeviceFeatures(t2));
    w2(MmioReg.STATUS, status() | Status.FEATURES_OK);
    setupQueue(t2, 0, q0);
    setupQueue(t2, 1, q1);
    w2(MmioReg.QUEUE_SEL, 0);
    w2(MmioReg.QUEUE_NUM, 4);
    w2(MmioReg.STATUS, status() | Status.DRIVER_OK);
    expect(d2.context!.queues[0]!.size).toBe(16);
  });

  it('a queue the driver did not enable is undefined in the activation context', () => {
    const { transport, device } = setup();
    bringUp(transport, [q0]);
    expect(device.context!.queues).toHaveLength(2);
    expect(device.context!.queues[1]).toBeUndefined();
  });

  for (const [what, layout] of [
    ['size 0', { ...q0, size: 0 }],
    ['size not a power of two', { ...q0, size: 12 }],
    ['size above QueueNumMax', { ...q0, size: 32 }],
    ['misaligned descriptor table', { ...q0, descAddr: 0x1004 }],
    ['misaligned driver area', { ...q0, availAddr: 0x2001 }],
    ['misaligned device area', { ...q0, usedAddr: 0x3002 }],
    ['rings outside RAM', { ...q0, usedAddr: 0x20000 }],
  ] as const) {
    it(`an enabled queue with ${what} makes DRIVER_OK fail with DEVICE_NEEDS_RESET`, () => {
      const { transport, device, irq, warnings } = setup();
      const status = bringUp(transport, [layout, q1]);
      expect(status & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
      expect(device.activations).toBe(0);
      expect(transport.isActive).toBe(false);
      expect(transport.interruptStatus & MmioInterrupt.CONFIG).toBe(MmioInterrupt.CONFIG);
      expect(irq).toContain(true);
      expect(warnings.some((m) => m.includes('cannot activate'))).toBe(true);
    });
  }

  it('high halves of ring addresses are combined (and a >= 2^52 address is refused)', () => {
    const { transport, device, w, status } = setup();
    w(MmioReg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    writeDriverFeatures(transport, readDeviceFeatures(transport));
    w(MmioReg.STATUS, status() | Status.FEATURES_OK);
    setupQueue(transport, 0, q0);
    w(MmioReg.QUEUE_SEL, 1);
    w(MmioReg.QUEUE_NUM, 8);
    w(MmioReg.QUEUE_DESC_LOW, 0x4000);
    w(MmioReg.QUEUE_DESC_HIGH, 0x0010_0000); // 2^52 + 0x4000
    w(MmioReg.QUEUE_DRIVER_LOW, 0x5000);
    w(MmioReg.QUEUE_DEVICE_LOW, 0x6000);
    w(MmioReg.QUEUE_READY, 1);
    w(MmioReg.STATUS, status() | Status.DRIVER_OK);
    expect(status() & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
    expect(device.activations).toBe(0);
  });
});

describe('virtio-mmio: notifications, interrupts, config', () => {
  it('QueueNotify and notify() reach processQueue only while active and for enabled queues', () => {
    const { transport, device, w, warnings } = setup();
    transport.notify(0); // not active yet
    bringUp(transport, [q0]);
    w(MmioReg.QUEUE_NOTIFY, 0);
    transport.notify(0);
    transport.notify(1); // not enabled
    transport.notify(7); // does not exist
    expect(device.processed).toEqual([0, 0]);
    expect(warnings.filter((m) => m.includes('not enabled'))).toHaveLength(2);
  });

  it('processes queues that already had buffers at DRIVER_OK', () => {
    const { transport, device, ram } = setup();
    const driver = new DriverQueue(ram, q1);
    driver.setDesc(0, { addr: DATA, len: 4 });
    driver.publish(0);
    bringUp(transport, [q0, q1]);
    expect(device.processed).toEqual([1]);
  });

  it('used buffers raise InterruptStatus bit 0; InterruptACK lowers the line', () => {
    const { transport, device, ram, irq, w } = setup();
    device.onProcess = (index) => {
      const queue = device.context!.queues[index]!;
      let chain;
      while ((chain = queue.popChain()) !== null) queue.addUsed(chain, 4);
      queue.interruptIfNeeded();
    };
    bringUp(transport, [q0, q1]);
    const driver = new DriverQueue(ram, q0);
    driver.setDesc(3, { addr: DATA, len: 4, flags: DescFlag.WRITE });
    driver.publish(3);
    transport.notify(0);
    expect(driver.used(0)).toEqual({ id: 3, len: 4 });
    expect(transport.read(MmioReg.INTERRUPT_STATUS, 4)).toBe(MmioInterrupt.VRING);
    expect(irq).toEqual([true]);
    w(MmioReg.INTERRUPT_ACK, MmioInterrupt.VRING);
    expect(transport.read(MmioReg.INTERRUPT_STATUS, 4)).toBe(0);
    expect(irq).toEqual([true, false]);
  });

  it('configChanged bumps ConfigGeneration and, after DRIVER_OK only, raises bit 1', () => {
    const { transport, device } = setup();
    device.host!.configChanged();
    expect(transport.read(MmioReg.CONFIG_GENERATION, 4)).toBe(1);
    expect(transport.interruptStatus).toBe(0);
    bringUp(transport, [q0, q1]);
    device.host!.configChanged();
    expect(transport.read(MmioReg.CONFIG_GENERATION, 4)).toBe(2);
    expect(transport.interruptStatus).toBe(MmioInterrupt.CONFIG);
  });

  it('DEVICE_NEEDS_RESET from the device: status bit, config interrupt, queues stopped; echoing the bit is fine', () => {
    const { transport, device, w, status } = setup();
    bringUp(transport, [q0, q1]);
    const queue = device.context!.queues[0]!;
    device.host!.needsReset('backend gone');
    expect(status() & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
    expect(transport.interruptStatus & MmioInterrupt.CONFIG).toBe(MmioInterrupt.CONFIG);
    expect(queue.isLive).toBe(false);
    transport.notify(0);
    expect(device.processed).toEqual([]);
    w(MmioReg.STATUS, status() | Status.FAILED); // Linux add_status reads then ORs: 0x40 comes back
    expect(status() & Status.FAILED).toBe(Status.FAILED);
    w(MmioReg.STATUS, 0);
    expect(status()).toBe(0);
  });

  it('a queue broken by the guest (avail idx jump) sets DEVICE_NEEDS_RESET', () => {
    const { transport, device, ram } = setup();
    device.onProcess = (index) => device.context!.queues[index]!.popChain();
    bringUp(transport, [q0, q1]);
    new DriverQueue(ram, q0).setAvailIdx(100);
    transport.notify(0);
    expect(transport.status & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
  });

  it('a device that throws is contained: logged, DEVICE_NEEDS_RESET, nothing escapes', () => {
    const { transport, device, warnings } = setup();
    device.onProcess = () => {
      throw new Error('boom');
    };
    bringUp(transport, [q0, q1]);
    expect(() => transport.notify(0)).not.toThrow();
    expect(transport.status & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
    expect(warnings.some((m) => m.includes('boom'))).toBe(true);
  });

  it('completions of chains from before a reset are dropped', () => {
    const { transport, device, ram, w } = setup();
    bringUp(transport, [q0, q1]);
    const driver = new DriverQueue(ram, q0);
    driver.setDesc(0, { addr: DATA, len: 4, flags: DescFlag.WRITE });
    driver.publish(0);
    const oldQueue = device.context!.queues[0]!;
    const chain = oldQueue.popChain()!;
    w(MmioReg.STATUS, 0);
    bringUp(transport, [q0, q1]);
    expect(oldQueue.addUsed(chain, 4)).toBe(false);
    expect(device.context!.queues[0]!.addUsed(chain, 4)).toBe(false);
    expect(driver.usedIdx).toBe(0);
  });

  it('config space: 1/2/4-byte little-endian reads and writes, bounds checked', () => {
    const { transport, device, warnings } = setup({ config: [1, 2, 3, 4, 5, 6, 7, 8] });
    expect(transport.read(MmioReg.CONFIG, 1)).toBe(1);
    expect(transport.read(MmioReg.CONFIG + 2, 2)).toBe(0x0403);
    expect(transport.read(MmioReg.CONFIG + 4, 4)).toBe(0x08070605);
    expect(transport.read(MmioReg.CONFIG + 6, 4)).toBe(0); // crosses the end
    expect(transport.read(MmioReg.CONFIG + 8, 1)).toBe(0);
    expect(transport.read(MmioReg.CONFIG, 8)).toBe(0);
    transport.write(MmioReg.CONFIG + 2, 2, 0xbeef);
    transport.write(MmioReg.CONFIG + 7, 2, 0xbeef); // crosses the end: ignored
    expect(device.configWrites).toEqual([[2, [0xef, 0xbe]]]);
    expect(warnings.filter((m) => m.includes('config'))).toHaveLength(4);
  });

  it('register accesses that are not aligned 32-bit are logged and ignored', () => {
    const { transport, w, warnings, status } = setup();
    expect(transport.read(MmioReg.MAGIC_VALUE, 2)).toBe(0);
    expect(transport.read(MmioReg.MAGIC_VALUE + 1, 4)).toBe(0);
    transport.write(MmioReg.STATUS, 1, Status.ACKNOWLEDGE);
    expect(status()).toBe(0);
    w(MmioReg.STATUS + 2, 1);
    expect(warnings).toHaveLength(4);
  });

  it('legacy, read-only and unknown registers are logged and ignored; SHM regions read as absent', () => {
    const { transport, w, warnings } = setup();
    w(MmioReg.GUEST_PAGE_SIZE, 4096);
    w(MmioReg.QUEUE_PFN, 1);
    w(MmioReg.MAGIC_VALUE, 0);
    w(0xf0, 1);
    expect(transport.read(MmioReg.QUEUE_PFN, 4)).toBe(0);
    expect(transport.read(MmioReg.DRIVER_FEATURES, 4)).toBe(0);
    expect(warnings).toHaveLength(6);
    expect(transport.read(MmioReg.MAGIC_VALUE, 4)).toBe(MMIO_MAGIC_VALUE);
    w(MmioReg.SHM_SEL, 0);
    expect(transport.read(MmioReg.SHM_LEN_LOW, 4)).toBe(0xffff_ffff);
    expect(transport.read(MmioReg.SHM_LEN_HIGH, 4)).toBe(0xffff_ffff);
  });
});

describe('virtioMmioCmdlineEntry', () => {
  it('formats the virtio_mmio.device= parameter and rejects bad windows', async () => {
    const { virtioMmioCmdlineEntry } = await import('../src/mmio-registers.js');
    expect(virtioMmioCmdlineEntry(0xd000_0000, 5)).toBe('virtio_mmio.device=4K@0xd0000000:5');
    expect(() => virtioMmioCmdlineEntry(0xd000_0800, 5)).toThrow(/4 KiB-aligned/);
    expect(() => virtioMmioCmdlineEntry(0xd000_0000, -1)).toThrow(/irq/);
  });
});
