/**
 * All tables in one blob, for the VMM to copy into guest RAM at `base`:
 *
 *   base + 0x00  RSDP (36 bytes; base is 16-byte aligned, so the RSDP is too)
 *   base + 0x30  XSDT -> FADT, MADT
 *   then FADT (276 bytes, X_DSDT -> DSDT), MADT, DSDT, each at the next 16-byte boundary
 *
 * Nothing in the blob depends on where the guest finds the RSDP other than through its address: the VMM
 * passes `rsdpAddress` in boot_params.acpi_rsdp_addr. Placing `base` in 0xE0000-0xFFFFF (the BIOS area,
 * reserved in the e820 map) also lets a kernel that ignores acpi_rsdp_addr find it by scanning.
 */
import { alignUp, assertAddress, assertUint } from './bytes.js';
import { type SerialPort, type VirtioMmioDevice, buildDsdt } from './dsdt.js';
import { FADT_SIZE, buildFadt } from './fadt.js';
import { type InterruptSourceOverride, type IoApicOptions, buildMadt } from './madt.js';
import { RSDP_ALIGNMENT, RSDP_SIZE, buildRsdp } from './rsdp.js';
import { SDT_HEADER_SIZE } from './sdt.js';
import { SLP_TYP_S5 } from './sleep.js';
import { XSDT_ENTRY_SIZE, buildXsdt } from './xsdt.js';

/** Alignment of each table in the blob. */
export const TABLE_ALIGNMENT = 16;
/** Pins of KVM's in-kernel IOAPIC: GSIs gsiBase..gsiBase+23. */
export const IOAPIC_PINS = 24;
/** Where the PIT's ISA IRQ 0 arrives by default: GSI 2, as on PC hardware (an override 0 -> 2). */
export const DEFAULT_IRQ0_GSI = 2;

export interface AcpiTablesOptions {
  /** Guest-physical address the blob is copied to; 16-byte aligned. */
  base: number;
  /** vCPUs, APIC IDs 0..cpus-1. */
  cpus: number;
  virtioMmio?: readonly VirtioMmioDevice[];
  /** A 16550 UART (COM1: { port: 0x3f8, irq: 4 }). */
  serial?: SerialPort;
  /** An i8042 at 0x60/0x64, IRQ 1. */
  i8042?: boolean;
  /** A CMOS RTC at 0x70 (default false: the FADT says CMOS_RTC_NOT_PRESENT). */
  rtc?: boolean;
  /** Default false: the FADT says MSI_NOT_SUPPORTED (there is no PCI). */
  msi?: boolean;
  /** I/O port of the 8-bit sleep control register (Cloud Hypervisor: 0x3c0). */
  sleepControlPort: number;
  /** I/O port of the sleep status register (default: the control port). */
  sleepStatusPort?: number;
  /** An 8-bit reset register: writing `value` to `port` resets the VM (sets RESET_REG_SUP). */
  reset?: { port: number; value: number };
  ioapic?: IoApicOptions;
  localApicAddress?: number;
  /**
   * GSI of ISA IRQ 0 (the PIT). The default 2 adds the override IRQ 0 -> GSI 2, right when GSI 0 is
   * routed to IOAPIC pin 2 (QEMU's routing); with KVM's default identity routing, where the PIT raises
   * pin 0, pass 0 and no override is emitted. (A hardware-reduced Linux guest uses neither the 8259 nor
   * the PIT interrupt, so this matters to other guests only.)
   */
  irq0Gsi?: number;
  /** More interrupt source overrides, after the IRQ 0 one (e.g. `{ irq: 4, gsi: 4 }`). */
  interruptOverrides?: readonly InterruptSourceOverride[];
  hypervisorVendorId?: string;
}

export type AcpiTableName = 'RSDP' | 'XSDT' | 'FACP' | 'APIC' | 'DSDT';

export interface AcpiTableLocation {
  name: AcpiTableName;
  /** Guest-physical address. */
  address: number;
  /** Offset in `bytes`. */
  offset: number;
  length: number;
}

export interface AcpiTables {
  /** Copy to guest RAM at `base`. */
  bytes: Uint8Array;
  base: number;
  /** For boot_params.acpi_rsdp_addr. */
  rsdpAddress: number;
  rsdpOffset: number;
  tables: AcpiTableLocation[];
}

function checkGsi(gsi: number, gsiBase: number, what: string): void {
  assertUint(gsi, 32, what);
  if (gsi < gsiBase || gsi >= gsiBase + IOAPIC_PINS) {
    throw new RangeError(`${what} ${gsi} is not one of the IOAPIC's GSIs ${gsiBase}-${gsiBase + IOAPIC_PINS - 1}`);
  }
}

export function buildAcpiTables(o: AcpiTablesOptions): AcpiTables {
  const { base, cpus, virtioMmio = [], serial, i8042 = false, rtc = false, msi = false } = o;
  assertAddress(base, 'ACPI tables base');
  if (base % RSDP_ALIGNMENT !== 0) throw new RangeError(`ACPI tables base 0x${base.toString(16)} is not 16-byte aligned`);
  assertUint(o.sleepControlPort, 16, 'sleep control port');
  const sleepStatusPort = o.sleepStatusPort ?? o.sleepControlPort;
  const gsiBase = o.ioapic?.gsiBase ?? 0;
  virtioMmio.forEach((d, i) => checkGsi(d.irq, gsiBase, `virtio-mmio device ${i} IRQ`));
  if (serial) checkGsi(serial.irq, gsiBase, 'serial IRQ');

  const irq0Gsi = o.irq0Gsi ?? DEFAULT_IRQ0_GSI;
  const overrides: InterruptSourceOverride[] = [
    ...(irq0Gsi !== 0 ? [{ irq: 0, gsi: irq0Gsi }] : []),
    ...(o.interruptOverrides ?? []),
  ];
  overrides.forEach((iso) => checkGsi(iso.gsi, gsiBase, `IRQ ${iso.irq} override GSI`));

  const dsdt = buildDsdt({ virtioMmio, serial, i8042, s5SleepType: SLP_TYP_S5 });
  const madt = buildMadt({ cpus, localApicAddress: o.localApicAddress, ioapic: o.ioapic, overrides });

  const rsdpOffset = 0;
  const xsdtOffset = alignUp(rsdpOffset + RSDP_SIZE, TABLE_ALIGNMENT);
  const fadtOffset = alignUp(xsdtOffset + SDT_HEADER_SIZE + 2 * XSDT_ENTRY_SIZE, TABLE_ALIGNMENT);
  const madtOffset = alignUp(fadtOffset + FADT_SIZE, TABLE_ALIGNMENT);
  const dsdtOffset = alignUp(madtOffset + madt.length, TABLE_ALIGNMENT);
  const total = dsdtOffset + dsdt.length;
  assertAddress(base + total, 'end of the ACPI tables');
  const at = (offset: number) => base + offset;

  const fadt = buildFadt({
    dsdtAddress: at(dsdtOffset),
    sleepControlPort: o.sleepControlPort,
    sleepStatusPort,
    reset: o.reset,
    i8042,
    rtc,
    legacyDevices: serial !== undefined || i8042,
    msi,
    hypervisorVendorId: o.hypervisorVendorId,
  });
  const placed: [AcpiTableName, number, Uint8Array][] = [
    ['RSDP', rsdpOffset, buildRsdp(at(xsdtOffset))],
    ['XSDT', xsdtOffset, buildXsdt([at(fadtOffset), at(madtOffset)])],
    ['FACP', fadtOffset, fadt],
    ['APIC', madtOffset, madt],
    ['DSDT', dsdtOffset, dsdt],
  ];
  const bytes = new Uint8Array(total);
  const tables = placed.map(([name, offset, table]) => {
    bytes.set(table, offset);
    return { name, address: at(offset), offset, length: table.length };
  });
  return { bytes, base, rsdpAddress: at(rsdpOffset), rsdpOffset, tables };
}
