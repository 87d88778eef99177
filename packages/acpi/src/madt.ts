/**
 * Multiple APIC Description Table (ACPI 6.5 §5.2.12): the local APIC of each vCPU (ACPI processor UID =
 * APIC ID = index), one I/O APIC, ISA interrupt source overrides and the LINT1 NMI of every processor.
 */
import { assertUint, dataView } from './bytes.js';
import { SDT_HEADER_SIZE, finishSdt } from './sdt.js';

export const MADT = { localApicAddress: SDT_HEADER_SIZE, flags: 40, entries: 44 } as const;
export const MADT_REVISION = 5;
/** Flags: PCAT_COMPAT (dual 8259s) is left clear. */
export const MADT_PCAT_COMPAT = 1;

export const MadtType = { LocalApic: 0, IoApic: 1, InterruptSourceOverride: 2, LocalApicNmi: 4 } as const;

export const MADT_LOCAL_APIC = { type: 0, length: 1, processorUid: 2, apicId: 3, flags: 4, size: 8 } as const;
export const MADT_IO_APIC = { type: 0, length: 1, id: 2, address: 4, gsiBase: 8, size: 12 } as const;
export const MADT_ISO = { type: 0, length: 1, bus: 2, source: 3, gsi: 4, flags: 8, size: 10 } as const;
export const MADT_LOCAL_APIC_NMI = { type: 0, length: 1, processorUid: 2, flags: 3, lint: 5, size: 6 } as const;

export const LOCAL_APIC_ENABLED = 1;
/** Processor UID meaning "all processors" in a Local APIC NMI entry. */
export const ALL_PROCESSORS = 0xff;
export const DEFAULT_LOCAL_APIC_ADDRESS = 0xfee0_0000;
export const DEFAULT_IO_APIC_ADDRESS = 0xfec0_0000;
/** xAPIC IDs are 8 bits and 0xFF is the broadcast ID. */
export const MAX_CPUS = 255;

export interface IoApicOptions {
  /** I/O APIC ID (default 0, what KVM's in-kernel IOAPIC reports at reset). */
  id?: number;
  address?: number;
  /** First GSI of its pins (default 0). */
  gsiBase?: number;
}

export type Trigger = 'conforming' | 'edge' | 'level';
export type Polarity = 'conforming' | 'high' | 'low';

export interface InterruptSourceOverride {
  /** ISA IRQ (bus-relative source). */
  irq: number;
  gsi: number;
  trigger?: Trigger;
  polarity?: Polarity;
}

/** MPS INTI flags (§5.2.12.5): polarity in bits 1-0, trigger mode in bits 3-2 (0 = conforms to the bus). */
export function mpsIntiFlags(trigger: Trigger = 'conforming', polarity: Polarity = 'conforming'): number {
  const p = { conforming: 0, high: 1, low: 3 }[polarity];
  const t = { conforming: 0, edge: 1, level: 3 }[trigger];
  return p | (t << 2);
}

export interface MadtOptions {
  cpus: number;
  localApicAddress?: number;
  ioapic?: IoApicOptions;
  overrides?: readonly InterruptSourceOverride[];
  /** One Local APIC NMI entry (all processors, LINT1), as the MP table's NMI local interrupt (default true). */
  lint1Nmi?: boolean;
}

export function buildMadt(o: MadtOptions): Uint8Array {
  const { cpus, localApicAddress = DEFAULT_LOCAL_APIC_ADDRESS, ioapic = {}, overrides = [], lint1Nmi = true } = o;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) throw new RangeError(`${cpus} vCPUs: the MADT describes 1 to ${MAX_CPUS}`);
  assertUint(localApicAddress, 32, 'local APIC address');
  const { id: ioapicId = 0, address: ioapicAddress = DEFAULT_IO_APIC_ADDRESS, gsiBase = 0 } = ioapic;
  assertUint(ioapicId, 8, 'I/O APIC ID');
  assertUint(ioapicAddress, 32, 'I/O APIC address');
  assertUint(gsiBase, 32, 'I/O APIC GSI base');

  const size =
    MADT.entries +
    cpus * MADT_LOCAL_APIC.size +
    MADT_IO_APIC.size +
    overrides.length * MADT_ISO.size +
    (lint1Nmi ? MADT_LOCAL_APIC_NMI.size : 0);
  const table = new Uint8Array(size);
  const dv = dataView(table);
  dv.setUint32(MADT.localApicAddress, localApicAddress, true);
  dv.setUint32(MADT.flags, 0, true);
  let p = MADT.entries;

  for (let i = 0; i < cpus; i++) {
    dv.setUint8(p + MADT_LOCAL_APIC.type, MadtType.LocalApic);
    dv.setUint8(p + MADT_LOCAL_APIC.length, MADT_LOCAL_APIC.size);
    dv.setUint8(p + MADT_LOCAL_APIC.processorUid, i);
    dv.setUint8(p + MADT_LOCAL_APIC.apicId, i);
    dv.setUint32(p + MADT_LOCAL_APIC.flags, LOCAL_APIC_ENABLED, true);
    p += MADT_LOCAL_APIC.size;
  }

  dv.setUint8(p + MADT_IO_APIC.type, MadtType.IoApic);
  dv.setUint8(p + MADT_IO_APIC.length, MADT_IO_APIC.size);
  dv.setUint8(p + MADT_IO_APIC.id, ioapicId);
  dv.setUint32(p + MADT_IO_APIC.address, ioapicAddress, true);
  dv.setUint32(p + MADT_IO_APIC.gsiBase, gsiBase, true);
  p += MADT_IO_APIC.size;

  for (const iso of overrides) {
    assertUint(iso.irq, 8, 'ISA IRQ');
    assertUint(iso.gsi, 32, 'GSI');
    dv.setUint8(p + MADT_ISO.type, MadtType.InterruptSourceOverride);
    dv.setUint8(p + MADT_ISO.length, MADT_ISO.size);
    dv.setUint8(p + MADT_ISO.bus, 0); // ISA
    dv.setUint8(p + MADT_ISO.source, iso.irq);
    dv.setUint32(p + MADT_ISO.gsi, iso.gsi, true);
    dv.setUint16(p + MADT_ISO.flags, mpsIntiFlags(iso.trigger, iso.polarity), true);
    p += MADT_ISO.size;
  }

  if (lint1Nmi) {
    dv.setUint8(p + MADT_LOCAL_APIC_NMI.type, MadtType.LocalApicNmi);
    dv.setUint8(p + MADT_LOCAL_APIC_NMI.length, MADT_LOCAL_APIC_NMI.size);
    dv.setUint8(p + MADT_LOCAL_APIC_NMI.processorUid, ALL_PROCESSORS);
    dv.setUint16(p + MADT_LOCAL_APIC_NMI.flags, 0, true);
    dv.setUint8(p + MADT_LOCAL_APIC_NMI.lint, 1);
    p += MADT_LOCAL_APIC_NMI.size;
  }
  return finishSdt(table, { signature: 'APIC', revision: MADT_REVISION, oemTableId: 'HYPEAPIC' });
}
