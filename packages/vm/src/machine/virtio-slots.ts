import type { EventFdWatch, IoEventFd, IrqFd, Vm } from '@hype/kvm';
import {
  DeviceId,
  MMIO_WINDOW_SIZE,
  MmioReg,
  MmioTransport,
  virtioMmioCmdlineEntry,
  type GuestMemory,
  type VirtioDevice,
  type VirtioLogger,
} from '@hype/virtio';
import type { Bus, BusDevice } from '../bus.js';
import { VmInputError } from './input-error.js';

/** virtio-mmio windows start here (in the PCI hole, below the IOAPIC) and follow each other. */
export const VIRTIO_MMIO_BASE = 0xd000_0000;
/** First GSI for virtio devices: 5 and up (0-4 are timer, keyboard, cascade, COM2, COM1). */
export const VIRTIO_FIRST_IRQ = 5;
/** IOAPIC pins 5..23 (the MP table routes 0-23). */
export const MAX_VIRTIO_DEVICES = 24 - VIRTIO_FIRST_IRQ;

/** One virtio device plugged into the VM: its transport on the MMIO bus, queue notifies through
 * ioeventfds (no vCPU exit), its interrupt through an irqfd. */
export interface VirtioSlot {
  readonly name: string;
  readonly base: number;
  readonly irq: number;
  readonly transport: MmioTransport;
  /** The `virtio_mmio.device=` entry the guest kernel needs to find it. */
  readonly cmdline: string;
}

/** Presents a transport's 1/2/4-byte register accesses as a bus device (little-endian data). */
function transportBusDevice(transport: MmioTransport): BusDevice {
  return {
    read(offset, data) {
      const size = data.length;
      if (size !== 1 && size !== 2 && size !== 4) return; // stays all-ones; the transport only knows 1/2/4
      let value = transport.read(offset, size);
      for (let i = 0; i < size; i++, value >>>= 8) data[i] = value & 0xff;
    },
    write(offset, data) {
      const size = data.length;
      if (size !== 1 && size !== 2 && size !== 4) return;
      let value = 0;
      for (let i = size - 1; i >= 0; i--) value = value * 256 + data[i];
      transport.write(offset, size, value);
    },
  };
}

export class VirtioSlots {
  readonly slots: VirtioSlot[] = [];
  private readonly teardown: (() => void)[] = [];

  constructor(
    private readonly vm: Vm,
    private readonly bus: Bus,
    private readonly memory: GuestMemory,
    private readonly log: VirtioLogger,
  ) {}

  add(device: VirtioDevice): VirtioSlot {
    const index = this.slots.length;
    if (index >= MAX_VIRTIO_DEVICES) throw new VmInputError('device', `too many virtio devices: at most ${MAX_VIRTIO_DEVICES}`);
    const base = VIRTIO_MMIO_BASE + index * MMIO_WINDOW_SIZE;
    const irq = VIRTIO_FIRST_IRQ + index;
    const name = `${device.name ?? deviceTypeName(device.deviceType)} @0x${base.toString(16)}`;
    const irqfd: IrqFd = this.vm.irqfd({ gsi: irq });
    this.teardown.push(() => irqfd.remove());
    // irqfd is edge-like: the transport calls interrupt(true) each time it raises a status bit.
    const transport = new MmioTransport(device, {
      memory: this.memory,
      interrupt: (asserted) => {
        if (asserted) irqfd.trigger();
      },
      log: prefixed(this.log, name),
    });
    this.bus.register(base, MMIO_WINDOW_SIZE, transportBusDevice(transport), name);
    for (let queue = 0; queue < device.queueMaxSizes.length; queue++) {
      const notify: IoEventFd = this.vm.ioeventfd({ addr: base + MmioReg.QUEUE_NOTIFY, len: 4, datamatch: queue });
      const watch: EventFdWatch = notify.eventFd.watch(() => transport.notify(queue));
      this.teardown.push(() => {
        watch.close();
        notify.remove();
      });
    }
    const slot = { name, base, irq, transport, cmdline: virtioMmioCmdlineEntry(base, irq) };
    this.slots.push(slot);
    return slot;
  }

  /**
   * Resets every device (so none touches guest memory again), then removes the ioeventfds and irqfds.
   * The VM must still be open; drain in-flight device I/O before this.
   */
  close(): void {
    for (const slot of this.slots) slot.transport.reset();
    for (const undo of this.teardown.splice(0).reverse()) undo();
  }
}

const DEVICE_TYPE_NAMES: Record<number, string> = {
  [DeviceId.NET]: 'virtio-net',
  [DeviceId.BLOCK]: 'virtio-blk',
  [DeviceId.CONSOLE]: 'virtio-console',
  [DeviceId.RNG]: 'virtio-rng',
  [DeviceId.VSOCK]: 'virtio-vsock',
};

function deviceTypeName(type: number): string {
  return DEVICE_TYPE_NAMES[type] ?? `virtio device type ${type}`;
}

function prefixed(log: VirtioLogger, name: string): VirtioLogger {
  return {
    warn: (msg) => log.warn(`${name}: ${msg}`),
    debug: (msg) => log.debug?.(`${name}: ${msg}`),
  };
}
