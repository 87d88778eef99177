/**
 * Differentiated System Description Table (ACPI 6.5 §5.2.11.1): the AML namespace of a microVM. At the
 * root the `_S5_` package; under `\_SB_` the COM1 serial port, the i8042 and one LNRO0005 device per
 * virtio-mmio window, as Firecracker and Cloud Hypervisor describe them:
 *
 *   Name (_S5_, Package () { 5, 5, 0, 0 })
 *   Scope (_SB_) {
 *     Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, 0)
 *       Name (_CRS, ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 1, 8)
 *                                         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 } }) }
 *     Device (PS2_) { Name (_HID, EisaId ("PNP0303")) Name (_UID, 0)
 *       Name (_CRS, ResourceTemplate () { IO (Decode16, 0x60, 0x60, 1, 1) IO (Decode16, 0x64, 0x64, 1, 1)
 *                                         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 1 } }) }
 *     Device (VR00) { Name (_HID, "LNRO0005") Name (_UID, 0)
 *       Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, base, size)
 *                                         Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { irq } }) }
 *   }
 *
 * virtio-mmio interrupts are edge-triggered, active-high, exclusive, as in Firecracker: KVM irqfds pulse
 * the line, and the driver reads InterruptStatus on every interrupt anyway.
 */
import { type AmlTerm, device, eisaId, name, pkg, scope } from './aml.js';
import { assertUint, concat } from './bytes.js';
import { type InterruptOptions, interrupt, io, memory32Fixed, qwordMemory, resourceTemplate } from './resources.js';
import { SDT_HEADER_SIZE, finishSdt } from './sdt.js';
import { SLP_TYP_S5 } from './sleep.js';

/** Revision 2 and later: AML integers are 64 bits. */
export const DSDT_REVISION = 2;
/** LNRO0005: the ACPI ID Linux's virtio_mmio driver matches. */
export const VIRTIO_MMIO_HID = 'LNRO0005';
/** Device names VR00..VRFF: at most 256 virtio-mmio devices. */
export const MAX_VIRTIO_MMIO_DEVICES = 256;

export interface VirtioMmioDevice {
  /** Guest-physical base of its register window. */
  base: number;
  size: number;
  /** GSI (IOAPIC pin). */
  irq: number;
}

export interface SerialPort {
  /** First of its 8 I/O ports (COM1: 0x3f8). */
  port: number;
  irq: number;
}

export interface DsdtOptions {
  virtioMmio?: readonly VirtioMmioDevice[];
  serial?: SerialPort;
  i8042?: boolean;
  /** SLP_TYP value of the `_S5_` package (default 5). */
  s5SleepType?: number;
}

const edgeHigh = (irq: number): InterruptOptions => ({ irqs: [irq], trigger: 'edge', polarity: 'high' });

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const I8042_IRQ = 1;

/** The AML of the DSDT body (everything after the header). */
export function dsdtAml(o: DsdtOptions): Uint8Array {
  const { virtioMmio = [], serial, i8042 = false, s5SleepType = SLP_TYP_S5 } = o;
  if (!Number.isInteger(s5SleepType) || s5SleepType < 0 || s5SleepType > 7) throw new RangeError(`SLP_TYP ${s5SleepType} is not 0-7`);
  if (virtioMmio.length > MAX_VIRTIO_MMIO_DEVICES) throw new RangeError(`at most ${MAX_VIRTIO_MMIO_DEVICES} virtio-mmio devices`);
  const devices: AmlTerm[] = [];
  if (serial) {
    assertUint(serial.port, 16, 'serial port');
    devices.push(
      device('COM1', [
        name('_HID', eisaId('PNP0501')),
        name('_UID', 0),
        name('_CRS', resourceTemplate([io({ min: serial.port, alignment: 1, length: 8 }), interrupt(edgeHigh(serial.irq))])),
      ]),
    );
  }
  if (i8042) {
    devices.push(
      device('PS2_', [
        name('_HID', eisaId('PNP0303')),
        name('_UID', 0),
        name(
          '_CRS',
          resourceTemplate([
            io({ min: I8042_DATA_PORT, alignment: 1, length: 1 }),
            io({ min: I8042_COMMAND_PORT, alignment: 1, length: 1 }),
            interrupt(edgeHigh(I8042_IRQ)),
          ]),
        ),
      ]),
    );
  }
  virtioMmio.forEach((dev, i) => devices.push(virtioMmioDevice(dev, i)));
  // SLP_TYPa, SLP_TYPb, then two reserved elements; hardware-reduced OSPM uses SLP_TYPa only.
  return concat([name('_S5_', pkg([s5SleepType, s5SleepType, 0, 0])), scope('_SB_', devices)]);
}

function virtioMmioDevice(dev: VirtioMmioDevice, index: number): AmlTerm {
  const { base, size, irq } = dev;
  if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(`virtio-mmio device ${index}: invalid window ${base}+${size}`);
  }
  const window = base + size <= 2 ** 32 ? memory32Fixed(base, size) : qwordMemory({ min: base, length: size });
  const id = index.toString(16).toUpperCase().padStart(2, '0');
  return device(`VR${id}`, [
    name('_HID', VIRTIO_MMIO_HID),
    name('_UID', index),
    name('_CRS', resourceTemplate([window, interrupt(edgeHigh(irq))])),
  ]);
}

export function buildDsdt(o: DsdtOptions): Uint8Array {
  const aml = dsdtAml(o);
  const table = new Uint8Array(SDT_HEADER_SIZE + aml.length);
  table.set(aml, SDT_HEADER_SIZE);
  return finishSdt(table, { signature: 'DSDT', revision: DSDT_REVISION, oemTableId: 'HYPEDSDT' });
}
