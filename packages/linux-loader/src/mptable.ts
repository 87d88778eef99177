import { LoaderError } from './errors.js';
import { LAYOUT } from './layout.js';
import { type GuestMemory, dataView, mustView } from './memory.js';

/**
 * Intel MultiProcessor Specification 1.4 tables, as Linux reads them (arch/x86/include/asm/mpspec_def.h,
 * arch/x86/kernel/mpparse.c): the floating pointer "_MP_" in the last KiB of base memory (0x9fc00, the
 * second place Linux scans), then the "PCMP" configuration table with one processor entry per vCPU, an ISA
 * bus, the IOAPIC and its 24 interrupt pins (ISA IRQ n -> pin n, KVM's default GSI routing), and the local
 * ExtINT/NMI entries. Offsets in bytes within each structure.
 */
export const MP = {
  floating: { signature: 0, physptr: 4, length: 8, specification: 9, checksum: 10, feature1: 11, feature2: 12 },
  floatingSize: 16,
  table: { signature: 0, length: 4, spec: 6, checksum: 7, oem: 8, productid: 16, oemptr: 28, oemsize: 32, oemcount: 34, lapic: 36, reserved: 40 },
  tableSize: 44,
  cpu: { type: 0, apicid: 1, apicver: 2, cpuflag: 3, cpufeature: 4, featureflag: 8 },
  cpuSize: 20,
  bus: { type: 0, busid: 1, bustype: 2 },
  busSize: 8,
  ioapic: { type: 0, apicid: 1, apicver: 2, flags: 3, apicaddr: 4 },
  ioapicSize: 8,
  /** mpc_intsrc and mpc_lintsrc share this layout. */
  intsrc: { type: 0, irqtype: 1, irqflag: 2, srcbus: 4, srcbusirq: 5, dstapic: 6, dstirq: 7 },
  intsrcSize: 8,
  MP_PROCESSOR: 0,
  MP_BUS: 1,
  MP_IOAPIC: 2,
  MP_INTSRC: 3,
  MP_LINTSRC: 4,
  CPU_ENABLED: 1,
  CPU_BOOTPROCESSOR: 2,
  MPC_APIC_USABLE: 1,
  mp_INT: 0,
  mp_NMI: 1,
  mp_ExtINT: 3,
  MP_IRQPOL_DEFAULT: 0,
  MP_APIC_ALL: 0xff,
  SPEC_1_4: 4,
} as const;

/** IOAPIC pins described (and IRQs routed 1:1): 0-23. */
export const MP_IRQ_COUNT = 24;
/** 255 xAPIC IDs, one of them taken by the IOAPIC. */
export const MP_MAX_CPUS = 254;
const APIC_VERSION = 0x14;
/** CPU signature in processor entries: family 6. */
const CPU_STEPPING = 0x600;
const CPU_FEATURE_FPU = 0x001;
const CPU_FEATURE_APIC = 0x200;
const OEM_ID = 'HYPE    ';
const PRODUCT_ID = 'HYPE VM     ';

const sum = (bytes: Uint8Array) => bytes.reduce((a, b) => (a + b) & 0xff, 0);
const ascii = (dst: Uint8Array, at: number, text: string) => {
  for (let i = 0; i < text.length; i++) dst[at + i] = text.charCodeAt(i);
};

/** Bytes the MP structures take for `cpus` processors. */
export function mpTableSize(cpus: number): number {
  return (
    MP.floatingSize +
    MP.tableSize +
    cpus * MP.cpuSize +
    MP.busSize +
    MP.ioapicSize +
    MP_IRQ_COUNT * MP.intsrcSize +
    2 * MP.intsrcSize
  );
}

/** The IOAPIC's APIC ID: the first ID after the CPUs' 0..cpus-1. */
export const ioapicId = (cpus: number): number => cpus;

/** Write the floating pointer and configuration table for `cpus` vCPUs (APIC IDs 0..cpus-1) at `at`. */
export function writeMpTable(mem: GuestMemory, cpus: number, at: number = LAYOUT.mpTable): { start: number; end: number } {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MP_MAX_CPUS) {
    throw new LoaderError('unsupported', `${cpus} vCPUs: the MP table describes 1 to ${MP_MAX_CPUS}`);
  }
  const size = mpTableSize(cpus);
  const buf = mustView(mem, at, size, 'MP table');
  buf.fill(0);
  const dv = dataView(buf);
  const tableAt = MP.floatingSize;
  let p = tableAt + MP.tableSize;
  let entries = 0;

  for (let id = 0; id < cpus; id++) {
    dv.setUint8(p + MP.cpu.type, MP.MP_PROCESSOR);
    dv.setUint8(p + MP.cpu.apicid, id);
    dv.setUint8(p + MP.cpu.apicver, APIC_VERSION);
    dv.setUint8(p + MP.cpu.cpuflag, MP.CPU_ENABLED | (id === 0 ? MP.CPU_BOOTPROCESSOR : 0));
    dv.setUint32(p + MP.cpu.cpufeature, CPU_STEPPING, true);
    dv.setUint32(p + MP.cpu.featureflag, CPU_FEATURE_APIC | CPU_FEATURE_FPU, true);
    p += MP.cpuSize;
    entries++;
  }
  dv.setUint8(p + MP.bus.type, MP.MP_BUS);
  dv.setUint8(p + MP.bus.busid, 0);
  ascii(buf, p + MP.bus.bustype, 'ISA   ');
  p += MP.busSize;
  entries++;

  const ioapic = ioapicId(cpus);
  dv.setUint8(p + MP.ioapic.type, MP.MP_IOAPIC);
  dv.setUint8(p + MP.ioapic.apicid, ioapic);
  dv.setUint8(p + MP.ioapic.apicver, APIC_VERSION);
  dv.setUint8(p + MP.ioapic.flags, MP.MPC_APIC_USABLE);
  dv.setUint32(p + MP.ioapic.apicaddr, LAYOUT.ioapic, true);
  p += MP.ioapicSize;
  entries++;

  for (let irq = 0; irq < MP_IRQ_COUNT; irq++) {
    dv.setUint8(p + MP.intsrc.type, MP.MP_INTSRC);
    dv.setUint8(p + MP.intsrc.irqtype, MP.mp_INT);
    dv.setUint16(p + MP.intsrc.irqflag, MP.MP_IRQPOL_DEFAULT, true);
    dv.setUint8(p + MP.intsrc.srcbus, 0);
    dv.setUint8(p + MP.intsrc.srcbusirq, irq);
    dv.setUint8(p + MP.intsrc.dstapic, ioapic);
    dv.setUint8(p + MP.intsrc.dstirq, irq);
    p += MP.intsrcSize;
    entries++;
  }
  // The 8259 (ExtINT) on LINT0 of the boot CPU, NMI on LINT1 of every CPU.
  for (const [irqtype, dstapic, lint] of [
    [MP.mp_ExtINT, 0, 0],
    [MP.mp_NMI, MP.MP_APIC_ALL, 1],
  ] as const) {
    dv.setUint8(p + MP.intsrc.type, MP.MP_LINTSRC);
    dv.setUint8(p + MP.intsrc.irqtype, irqtype);
    dv.setUint16(p + MP.intsrc.irqflag, MP.MP_IRQPOL_DEFAULT, true);
    dv.setUint8(p + MP.intsrc.dstapic, dstapic);
    dv.setUint8(p + MP.intsrc.dstirq, lint);
    p += MP.intsrcSize;
    entries++;
  }

  ascii(buf, tableAt + MP.table.signature, 'PCMP');
  dv.setUint16(tableAt + MP.table.length, p - tableAt, true);
  dv.setUint8(tableAt + MP.table.spec, MP.SPEC_1_4);
  ascii(buf, tableAt + MP.table.oem, OEM_ID);
  ascii(buf, tableAt + MP.table.productid, PRODUCT_ID);
  dv.setUint16(tableAt + MP.table.oemcount, entries, true);
  dv.setUint32(tableAt + MP.table.lapic, LAYOUT.lapic, true);
  dv.setUint8(tableAt + MP.table.checksum, (256 - sum(buf.subarray(tableAt, p))) & 0xff);

  ascii(buf, MP.floating.signature, '_MP_');
  dv.setUint32(MP.floating.physptr, at + tableAt, true);
  dv.setUint8(MP.floating.length, 1); // in 16-byte paragraphs
  dv.setUint8(MP.floating.specification, MP.SPEC_1_4);
  dv.setUint8(MP.floating.checksum, (256 - sum(buf.subarray(0, MP.floatingSize))) & 0xff);
  return { start: at, end: at + size };
}

export interface MpTable {
  floatingChecksumOk: boolean;
  tableAddr: number;
  tableChecksumOk: boolean;
  spec: number;
  oem: string;
  productId: string;
  lapicAddr: number;
  entryCount: number;
  cpus: { apicId: number; apicVersion: number; enabled: boolean; bootProcessor: boolean; featureFlags: number }[];
  buses: { id: number; type: string }[];
  ioapics: { id: number; version: number; usable: boolean; addr: number }[];
  interrupts: { irqType: number; flags: number; srcBus: number; srcBusIrq: number; dstApic: number; dstIrq: number }[];
  localInterrupts: { irqType: number; flags: number; srcBus: number; srcBusIrq: number; dstApic: number; dstLint: number }[];
}

const text = (b: Uint8Array) => String.fromCharCode(...b);

/** Read the MP tables back from guest memory (as Linux's mpparse would), throwing on anything malformed. */
export function parseMpTable(mem: GuestMemory, at: number = LAYOUT.mpTable): MpTable {
  const fp = mem.view(at, MP.floatingSize);
  if (!fp || text(fp.subarray(0, 4)) !== '_MP_') throw new Error(`no _MP_ floating pointer at 0x${at.toString(16)}`);
  const fdv = dataView(fp);
  const tableAddr = fdv.getUint32(MP.floating.physptr, true);
  const head = mem.view(tableAddr, MP.tableSize);
  if (!head || text(head.subarray(0, 4)) !== 'PCMP') throw new Error(`no PCMP table at 0x${tableAddr.toString(16)}`);
  const length = dataView(head).getUint16(MP.table.length, true);
  const table = mem.view(tableAddr, length);
  if (!table || length < MP.tableSize) throw new Error(`MP table length ${length} invalid`);
  const dv = dataView(table);
  const out: MpTable = {
    floatingChecksumOk: sum(fp) === 0,
    tableAddr,
    tableChecksumOk: sum(table) === 0,
    spec: dv.getUint8(MP.table.spec),
    oem: text(table.subarray(MP.table.oem, MP.table.oem + 8)),
    productId: text(table.subarray(MP.table.productid, MP.table.productid + 12)),
    lapicAddr: dv.getUint32(MP.table.lapic, true),
    entryCount: dv.getUint16(MP.table.oemcount, true),
    cpus: [],
    buses: [],
    ioapics: [],
    interrupts: [],
    localInterrupts: [],
  };
  let p = MP.tableSize;
  while (p < length) {
    const type = dv.getUint8(p);
    const size = type === MP.MP_PROCESSOR ? MP.cpuSize : type <= MP.MP_LINTSRC ? 8 : 0;
    if (size === 0 || p + size > length) throw new Error(`bad MP entry type ${type} at offset ${p}`);
    if (type === MP.MP_PROCESSOR) {
      const flags = dv.getUint8(p + MP.cpu.cpuflag);
      out.cpus.push({
        apicId: dv.getUint8(p + MP.cpu.apicid),
        apicVersion: dv.getUint8(p + MP.cpu.apicver),
        enabled: (flags & MP.CPU_ENABLED) !== 0,
        bootProcessor: (flags & MP.CPU_BOOTPROCESSOR) !== 0,
        featureFlags: dv.getUint32(p + MP.cpu.featureflag, true),
      });
    } else if (type === MP.MP_BUS) {
      out.buses.push({ id: dv.getUint8(p + MP.bus.busid), type: text(table.subarray(p + 2, p + 8)).trimEnd() });
    } else if (type === MP.MP_IOAPIC) {
      out.ioapics.push({
        id: dv.getUint8(p + MP.ioapic.apicid),
        version: dv.getUint8(p + MP.ioapic.apicver),
        usable: (dv.getUint8(p + MP.ioapic.flags) & MP.MPC_APIC_USABLE) !== 0,
        addr: dv.getUint32(p + MP.ioapic.apicaddr, true),
      });
    } else {
      const e = {
        irqType: dv.getUint8(p + MP.intsrc.irqtype),
        flags: dv.getUint16(p + MP.intsrc.irqflag, true),
        srcBus: dv.getUint8(p + MP.intsrc.srcbus),
        srcBusIrq: dv.getUint8(p + MP.intsrc.srcbusirq),
        dstApic: dv.getUint8(p + MP.intsrc.dstapic),
      };
      if (type === MP.MP_INTSRC) out.interrupts.push({ ...e, dstIrq: dv.getUint8(p + MP.intsrc.dstirq) });
      else out.localInterrupts.push({ ...e, dstLint: dv.getUint8(p + MP.intsrc.dstirq) });
    }
    p += size;
  }
  return out;
}
