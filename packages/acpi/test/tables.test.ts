import { describe, expect, it } from 'vitest';
import { buildDsdt, dsdtAml } from '../src/dsdt.js';
import { FADT, FADT_SIZE, FadtFlag, HYPERVISOR_VENDOR_ID, IapcBootArch, buildFadt } from '../src/fadt.js';
import { AddressSpace, AccessSize, GAS } from '../src/gas.js';
import { DEFAULT_IRQ0_GSI, buildAcpiTables } from '../src/layout.js';
import { MADT, MADT_IO_APIC, MADT_ISO, MADT_LOCAL_APIC, MADT_LOCAL_APIC_NMI, MadtType, buildMadt, mpsIntiFlags } from '../src/madt.js';
import { RSDP, RSDP_SIZE, RSDP_V1_SIZE, buildRsdp } from '../src/rsdp.js';
import { SDT_HEADER, SDT_HEADER_SIZE } from '../src/sdt.js';
import { S5_SLEEP_CONTROL_VALUE, SLP_EN, SLP_TYP_S5, WAK_STS, decodeSleepControl } from '../src/sleep.js';
import { XSDT } from '../src/xsdt.js';
import { eisaIdBytes, nameSeg } from '../src/aml.js';
import { interrupt, memory32Fixed } from '../src/resources.js';
import { MINIMAL, TYPICAL } from './fixtures.js';
import { dv, hex, sum8, tableAt, text, u64 } from './helpers.js';

function count(haystack: Uint8Array, needle: Uint8Array): number {
  let n = 0;
  const h = hex(haystack);
  const x = hex(needle);
  for (let i = h.indexOf(x); i !== -1; i = h.indexOf(x, i + 1)) if (i % 2 === 0) n++;
  return n;
}

/** Walks RSDP -> XSDT -> FADT/MADT -> DSDT as an OS does, from the RSDP address alone. */
function walk(blob: Uint8Array, base: number, rsdpAddress: number) {
  const rsdp = blob.subarray(rsdpAddress - base, rsdpAddress - base + RSDP_SIZE);
  const xsdt = tableAt(blob, base, u64(rsdp, RSDP.xsdtAddress));
  const entries = (xsdt.length - SDT_HEADER_SIZE) / 8;
  const pointed = Array.from({ length: entries }, (_, k) => tableAt(blob, base, u64(xsdt, XSDT.entries + 8 * k)));
  const bySignature = new Map(pointed.map((t) => [text(t, 0, 4), t]));
  const fadt = bySignature.get('FACP')!;
  const madt = bySignature.get('APIC')!;
  const dsdt = tableAt(blob, base, u64(fadt, FADT.xDsdt));
  return { rsdp, xsdt, fadt, madt, dsdt };
}

describe('buildAcpiTables layout', () => {
  for (const [label, options] of [
    ['typical', TYPICAL],
    ['minimal, above 4 GiB', MINIMAL],
  ] as const) {
    it(`${label}: RSDP at base, 16-byte aligned tables that do not overlap, reachable from the RSDP`, () => {
      const t = buildAcpiTables(options);
      expect(t.rsdpAddress).toBe(options.base);
      expect(t.rsdpOffset).toBe(0);
      expect(t.rsdpAddress % 16).toBe(0);
      expect(t.tables.map((x) => x.name)).toEqual(['RSDP', 'XSDT', 'FACP', 'APIC', 'DSDT']);
      let end = 0;
      for (const x of t.tables) {
        expect(x.address).toBe(options.base + x.offset);
        expect(x.offset % 16, x.name).toBe(0);
        expect(x.offset, x.name).toBeGreaterThanOrEqual(end);
        end = x.offset + x.length;
      }
      expect(t.bytes.length).toBe(end);
      const { rsdp, xsdt, fadt, madt, dsdt } = walk(t.bytes, options.base, t.rsdpAddress);
      const located = Object.fromEntries(t.tables.map((x) => [x.name, t.bytes.subarray(x.offset, x.offset + x.length)]));
      expect(hex(rsdp)).toBe(hex(located.RSDP));
      expect(hex(xsdt)).toBe(hex(located.XSDT));
      expect(hex(fadt)).toBe(hex(located.FACP));
      expect(hex(madt)).toBe(hex(located.APIC));
      expect(hex(dsdt)).toBe(hex(located.DSDT));
    });

    it(`${label}: every table sums to 0 mod 256 (the RSDP over 20 and over 36 bytes)`, () => {
      const t = buildAcpiTables(options);
      for (const x of t.tables) {
        const bytes = t.bytes.subarray(x.offset, x.offset + x.length);
        if (x.name === 'RSDP') {
          expect(sum8(bytes.subarray(0, RSDP_V1_SIZE))).toBe(0);
          expect(sum8(bytes)).toBe(0);
        } else {
          expect(sum8(bytes), x.name).toBe(0);
          expect(dv(bytes).getUint32(SDT_HEADER.length, true), x.name).toBe(x.length);
        }
      }
    });
  }

  it('rejects a base that is not 16-byte aligned, IRQs the IOAPIC lacks and bad vCPU counts', () => {
    expect(() => buildAcpiTables({ ...TYPICAL, base: 0xe_0008 })).toThrow(/16-byte aligned/);
    expect(() => buildAcpiTables({ ...TYPICAL, virtioMmio: [{ base: 0xd000_0000, size: 0x1000, irq: 24 }] })).toThrow(/IOAPIC/);
    expect(() => buildAcpiTables({ ...TYPICAL, serial: { port: 0x3f8, irq: 30 } })).toThrow(/IOAPIC/);
    expect(() => buildAcpiTables({ ...TYPICAL, cpus: 0 })).toThrow(RangeError);
    expect(() => buildAcpiTables({ ...TYPICAL, cpus: 256 })).toThrow(RangeError);
    expect(() => buildAcpiTables({ ...TYPICAL, sleepControlPort: 0x10000 })).toThrow(RangeError);
  });

  it('is deterministic', () => {
    expect(hex(buildAcpiTables(TYPICAL).bytes)).toBe(hex(buildAcpiTables(TYPICAL).bytes));
  });
});

describe('RSDP (ACPI 6.5 §5.2.5.3)', () => {
  it('is 36 bytes: signature, both checksums, OEMID, revision 2, no RSDT, length, XSDT address', () => {
    const rsdp = buildRsdp(0x1_2345_6780);
    expect(rsdp.length).toBe(36);
    expect(RSDP).toMatchObject({ checksum: 8, oemId: 9, revision: 15, rsdtAddress: 16, length: 20, xsdtAddress: 24, extendedChecksum: 32 });
    expect(text(rsdp, 0, 8)).toBe('RSD PTR ');
    expect(text(rsdp, RSDP.oemId, 6)).toBe('HYPE  ');
    expect(rsdp[RSDP.revision]).toBe(2);
    expect(dv(rsdp).getUint32(RSDP.rsdtAddress, true)).toBe(0);
    expect(dv(rsdp).getUint32(RSDP.length, true)).toBe(36);
    expect(u64(rsdp, RSDP.xsdtAddress)).toBe(0x1_2345_6780);
    expect(sum8(rsdp.subarray(0, 20))).toBe(0);
    expect(sum8(rsdp)).toBe(0);
  });
});

describe('table header (ACPI 6.5 §5.2.6)', () => {
  it('is 36 bytes at the documented offsets, in every table', () => {
    expect(SDT_HEADER_SIZE).toBe(36);
    expect(SDT_HEADER).toEqual({
      signature: 0,
      length: 4,
      revision: 8,
      checksum: 9,
      oemId: 10,
      oemTableId: 16,
      oemRevision: 24,
      creatorId: 28,
      creatorRevision: 32,
    });
    const t = buildAcpiTables(TYPICAL);
    const expected = { XSDT: [1, 'HYPEXSDT'], FACP: [6, 'HYPEFACP'], APIC: [5, 'HYPEAPIC'], DSDT: [2, 'HYPEDSDT'] } as const;
    for (const x of t.tables.filter((x) => x.name !== 'RSDP')) {
      const table = t.bytes.subarray(x.offset, x.offset + x.length);
      const [revision, oemTableId] = expected[x.name as keyof typeof expected];
      expect(text(table, 0, 4)).toBe(x.name);
      expect(table[SDT_HEADER.revision], x.name).toBe(revision);
      expect(text(table, SDT_HEADER.oemId, 6)).toBe('HYPE  ');
      expect(text(table, SDT_HEADER.oemTableId, 8)).toBe(oemTableId);
      expect(dv(table).getUint32(SDT_HEADER.oemRevision, true)).toBe(1);
      expect(text(table, SDT_HEADER.creatorId, 4)).toBe('HYPE');
    }
  });
});

describe('XSDT (ACPI 6.5 §5.2.8)', () => {
  it('holds 64-bit pointers to the FADT, then the MADT', () => {
    const t = buildAcpiTables(MINIMAL);
    const [, xsdt, fadt, madt] = t.tables;
    const bytes = t.bytes.subarray(xsdt.offset, xsdt.offset + xsdt.length);
    expect(xsdt.length).toBe(36 + 2 * 8);
    expect(u64(bytes, 36)).toBe(fadt.address);
    expect(u64(bytes, 44)).toBe(madt.address);
    expect(fadt.address).toBeGreaterThan(2 ** 32);
  });
});

describe('FADT (ACPI 6.5 §5.2.9)', () => {
  const fadtOf = (options = TYPICAL) => {
    const t = buildAcpiTables(options);
    const x = t.tables.find((x) => x.name === 'FACP')!;
    return { t, fadt: t.bytes.subarray(x.offset, x.offset + x.length) };
  };

  it('is 276 bytes, revision 6.5, with the fields at the spec offsets', () => {
    expect(FADT_SIZE).toBe(276);
    expect(FADT).toMatchObject({
      firmwareCtrl: 36,
      dsdt: 40,
      sciInt: 46,
      iapcBootArch: 109,
      flags: 112,
      resetReg: 116,
      resetValue: 128,
      minorVersion: 131,
      xFirmwareCtrl: 132,
      xDsdt: 140,
      sleepControlReg: 244,
      sleepStatusReg: 256,
      hypervisorVendorId: 268,
    });
    const { fadt } = fadtOf();
    expect(fadt.length).toBe(276);
    expect(fadt[SDT_HEADER.revision]).toBe(6);
    expect(fadt[FADT.minorVersion]).toBe(5);
  });

  it('points at the DSDT through X_DSDT only, and has no FACS', () => {
    const { t, fadt } = fadtOf();
    expect(u64(fadt, FADT.xDsdt)).toBe(t.tables.find((x) => x.name === 'DSDT')!.address);
    expect(dv(fadt).getUint32(FADT.dsdt, true)).toBe(0);
    expect(dv(fadt).getUint32(FADT.firmwareCtrl, true)).toBe(0);
    expect(u64(fadt, FADT.xFirmwareCtrl)).toBe(0);
  });

  it('is hardware-reduced, without fixed power/sleep buttons, with RESET_REG_SUP only when there is a reset register', () => {
    const flags = (f: Uint8Array) => dv(f).getUint32(FADT.flags, true);
    const { fadt } = fadtOf();
    expect(flags(fadt)).toBe(FadtFlag.HW_REDUCED_ACPI | FadtFlag.PWR_BUTTON | FadtFlag.SLP_BUTTON | FadtFlag.RESET_REG_SUP);
    expect(flags(fadt)).toBe((1 << 20) | (1 << 4) | (1 << 5) | (1 << 10));
    expect(fadt[FADT.resetReg + GAS.addressSpaceId]).toBe(AddressSpace.SystemIo);
    expect(u64(fadt, FADT.resetReg + GAS.address)).toBe(0x3c0);
    expect(fadt[FADT.resetValue]).toBe(1);

    const { fadt: noReset } = fadtOf(MINIMAL);
    expect(flags(noReset) & FadtFlag.RESET_REG_SUP).toBe(0);
    expect(hex(noReset.subarray(FADT.resetReg, FADT.resetValue + 1))).toBe('00'.repeat(13));
  });

  it('describes the sleep control and status registers as 8-bit system I/O GASes at the chosen ports', () => {
    const gas = (f: Uint8Array, at: number) => ({
      space: f[at + GAS.addressSpaceId],
      width: f[at + GAS.registerBitWidth],
      offset: f[at + GAS.registerBitOffset],
      access: f[at + GAS.accessSize],
      address: u64(f, at + GAS.address),
    });
    const io8 = (address: number) => ({ space: 1, width: 8, offset: 0, access: AccessSize.Byte, address });
    const { fadt } = fadtOf();
    expect(gas(fadt, FADT.sleepControlReg)).toEqual(io8(0x3c0));
    expect(gas(fadt, FADT.sleepStatusReg)).toEqual(io8(0x3c0));
    const { fadt: separate } = fadtOf(MINIMAL);
    expect(gas(separate, FADT.sleepControlReg)).toEqual(io8(0x600));
    expect(gas(separate, FADT.sleepStatusReg)).toEqual(io8(0x601));
  });

  it('sets the IA-PC boot flags: no VGA, no CMOS RTC unless present, 8042 only when asked', () => {
    const boot = (o = TYPICAL) => dv(fadtOf(o).fadt).getUint16(FADT.iapcBootArch, true);
    expect(boot()).toBe(
      IapcBootArch.LEGACY_DEVICES | IapcBootArch.I8042 | IapcBootArch.VGA_NOT_PRESENT | IapcBootArch.MSI_NOT_SUPPORTED | IapcBootArch.CMOS_RTC_NOT_PRESENT,
    );
    expect(boot(MINIMAL)).toBe(IapcBootArch.VGA_NOT_PRESENT | IapcBootArch.MSI_NOT_SUPPORTED | IapcBootArch.CMOS_RTC_NOT_PRESENT);
    expect(boot({ ...MINIMAL, rtc: true }) & IapcBootArch.CMOS_RTC_NOT_PRESENT).toBe(0);
    expect(boot({ ...TYPICAL, i8042: false }) & IapcBootArch.I8042).toBe(0);
    expect(IapcBootArch).toEqual({
      LEGACY_DEVICES: 1,
      I8042: 2,
      VGA_NOT_PRESENT: 4,
      MSI_NOT_SUPPORTED: 8,
      PCIE_ASPM_CONTROLS: 16,
      CMOS_RTC_NOT_PRESENT: 32,
    });
  });

  it('carries the Hypervisor Vendor Identity', () => {
    expect(text(fadtOf().fadt, FADT.hypervisorVendorId, 8)).toBe(HYPERVISOR_VENDOR_ID);
    expect(text(fadtOf({ ...TYPICAL, hypervisorVendorId: 'TESTVMM' }).fadt, 268, 8)).toBe('TESTVMM ');
    expect(() => buildFadt({ dsdtAddress: 0, sleepControlPort: 1, sleepStatusPort: 1, i8042: false, rtc: false, legacyDevices: false, msi: false, hypervisorVendorId: 'TOO LONG!' })).toThrow(RangeError);
  });
});

describe('MADT (ACPI 6.5 §5.2.12)', () => {
  it('has the local APIC address and PCAT_COMPAT clear', () => {
    const madt = buildMadt({ cpus: 1 });
    expect(MADT).toEqual({ localApicAddress: 36, flags: 40, entries: 44 });
    expect(dv(madt).getUint32(MADT.localApicAddress, true)).toBe(0xfee0_0000);
    expect(dv(madt).getUint32(MADT.flags, true)).toBe(0);
  });

  it('entries are 8 (local APIC), 12 (I/O APIC), 10 (override) and 6 (local APIC NMI) bytes', () => {
    expect([MADT_LOCAL_APIC.size, MADT_IO_APIC.size, MADT_ISO.size, MADT_LOCAL_APIC_NMI.size]).toEqual([8, 12, 10, 6]);
    expect(buildMadt({ cpus: 3, overrides: [{ irq: 0, gsi: 2 }] }).length).toBe(44 + 3 * 8 + 12 + 10 + 6);
    expect(buildMadt({ cpus: 1, lint1Nmi: false }).length).toBe(44 + 8 + 12);
  });

  function entries(madt: Uint8Array) {
    const out: { type: number; bytes: Uint8Array }[] = [];
    for (let p = MADT.entries; p < madt.length; p += madt[p + 1]) out.push({ type: madt[p], bytes: madt.subarray(p, p + madt[p + 1]) });
    return out;
  }

  it.each([1, 2, 4, 64, 255])('has one enabled local APIC per vCPU, UID = APIC ID = index (%i vCPUs)', (cpus) => {
    const t = buildAcpiTables({ ...TYPICAL, cpus });
    const x = t.tables.find((x) => x.name === 'APIC')!;
    const lapics = entries(t.bytes.subarray(x.offset, x.offset + x.length)).filter((e) => e.type === MadtType.LocalApic);
    expect(lapics).toHaveLength(cpus);
    lapics.forEach(({ bytes }, i) => {
      expect(bytes.length).toBe(8);
      expect(bytes[MADT_LOCAL_APIC.processorUid]).toBe(i);
      expect(bytes[MADT_LOCAL_APIC.apicId]).toBe(i);
      expect(dv(bytes).getUint32(MADT_LOCAL_APIC.flags, true)).toBe(1);
    });
  });

  it('has one I/O APIC (id, 0xfec00000, GSI base 0), the IRQ 0 -> GSI 2 override, the given overrides, then the LINT1 NMI', () => {
    const t = buildAcpiTables(TYPICAL);
    const x = t.tables.find((x) => x.name === 'APIC')!;
    const list = entries(t.bytes.subarray(x.offset, x.offset + x.length)).filter((e) => e.type !== MadtType.LocalApic);
    expect(list.map((e) => e.type)).toEqual([MadtType.IoApic, MadtType.InterruptSourceOverride, MadtType.InterruptSourceOverride, MadtType.LocalApicNmi]);
    const [ioapic, irq0, com1, nmi] = list.map((e) => e.bytes);
    expect(ioapic[MADT_IO_APIC.id]).toBe(0);
    expect(dv(ioapic).getUint32(MADT_IO_APIC.address, true)).toBe(0xfec0_0000);
    expect(dv(ioapic).getUint32(MADT_IO_APIC.gsiBase, true)).toBe(0);
    expect(DEFAULT_IRQ0_GSI).toBe(2);
    expect([irq0[MADT_ISO.bus], irq0[MADT_ISO.source], dv(irq0).getUint32(MADT_ISO.gsi, true), dv(irq0).getUint16(MADT_ISO.flags, true)]).toEqual([0, 0, 2, 0]);
    expect([com1[MADT_ISO.source], dv(com1).getUint32(MADT_ISO.gsi, true), dv(com1).getUint16(MADT_ISO.flags, true)]).toEqual([4, 4, 0b0101]);
    expect([nmi[MADT_LOCAL_APIC_NMI.processorUid], dv(nmi).getUint16(MADT_LOCAL_APIC_NMI.flags, true), nmi[MADT_LOCAL_APIC_NMI.lint]]).toEqual([0xff, 0, 1]);
  });

  it('omits the IRQ 0 override for identity routing (irq0Gsi: 0) and takes the I/O APIC id and address', () => {
    const t = buildAcpiTables({ ...MINIMAL, irq0Gsi: 0, ioapic: { id: 1, address: 0xfec1_0000 } });
    const x = t.tables.find((x) => x.name === 'APIC')!;
    const list = entries(t.bytes.subarray(x.offset, x.offset + x.length));
    expect(list.map((e) => e.type)).toEqual([MadtType.LocalApic, MadtType.IoApic, MadtType.LocalApicNmi]);
    expect(list[1].bytes[MADT_IO_APIC.id]).toBe(1);
    expect(dv(list[1].bytes).getUint32(MADT_IO_APIC.address, true)).toBe(0xfec1_0000);
  });

  it('encodes MPS INTI flags: polarity in bits 1-0, trigger in bits 3-2', () => {
    expect(mpsIntiFlags()).toBe(0);
    expect(mpsIntiFlags('edge', 'high')).toBe(0x5);
    expect(mpsIntiFlags('level', 'low')).toBe(0xf);
    expect(mpsIntiFlags('level', 'high')).toBe(0xd);
  });
});

describe('DSDT (ACPI 6.5 §5.2.11.1)', () => {
  const LNRO0005 = new TextEncoder().encode('\x0dLNRO0005\x00');

  it.each([0, 1, 3, 19, 256])('has one LNRO0005 device per virtio-mmio device (%i devices), VR00 upwards', (n) => {
    const virtioMmio = Array.from({ length: n }, (_, i) => ({ base: 0xd000_0000 + i * 0x1000, size: 0x1000, irq: 5 + (i % 19) }));
    const dsdt = buildDsdt({ virtioMmio });
    expect(count(dsdt, LNRO0005)).toBe(n);
    virtioMmio.forEach((d, i) => {
      const seg = nameSeg(`VR${i.toString(16).toUpperCase().padStart(2, '0')}`);
      expect(count(dsdt, seg), `VR${i}`).toBe(1);
      const crs = new Uint8Array([...memory32Fixed(d.base, d.size), ...interrupt({ irqs: [d.irq], trigger: 'edge', polarity: 'high' })]);
      expect(count(dsdt, crs), `device ${i} _CRS`).toBe(1);
    });
    expect(sum8(dsdt)).toBe(0);
  });

  it('rejects more than 256 virtio-mmio devices', () => {
    expect(() => dsdtAml({ virtioMmio: Array.from({ length: 257 }, () => ({ base: 0, size: 1, irq: 5 })) })).toThrow(RangeError);
  });

  it('describes COM1 and the i8042 only when present, and always the _S5_ package', () => {
    const pnp0501 = eisaIdBytes('PNP0501');
    const pnp0303 = eisaIdBytes('PNP0303');
    const s5 = new Uint8Array([0x08, ...nameSeg('_S5_'), 0x12, 0x08, 0x04, 0x0a, SLP_TYP_S5, 0x0a, SLP_TYP_S5, 0x00, 0x00]);
    const bare = dsdtAml({});
    expect([count(bare, pnp0501), count(bare, pnp0303), count(bare, s5)]).toEqual([0, 0, 1]);
    const full = dsdtAml({ serial: { port: 0x2f8, irq: 3 }, i8042: true });
    expect([count(full, pnp0501), count(full, pnp0303), count(full, s5)]).toEqual([1, 1, 1]);
    expect(count(full, Uint8Array.of(0x47, 0x01, 0xf8, 0x02, 0xf8, 0x02, 0x01, 0x08))).toBe(1); // IO (Decode16, 0x2F8, 0x2F8, 1, 8)
  });
});

describe('sleep control register (ACPI 6.5 §4.8.3.7)', () => {
  it('has SLP_TYP in bits 4-2 and SLP_EN in bit 5; S5 is written as 0x34', () => {
    expect(SLP_EN).toBe(1 << 5);
    expect(WAK_STS).toBe(1 << 7);
    expect(SLP_TYP_S5).toBe(5);
    expect(S5_SLEEP_CONTROL_VALUE).toBe(0x34);
  });

  it('decodes what the guest writes', () => {
    expect(decodeSleepControl(0x34)).toEqual({ sleepType: 5, enable: true });
    expect(decodeSleepControl(0x14)).toEqual({ sleepType: 5, enable: false });
    expect(decodeSleepControl(WAK_STS)).toEqual({ sleepType: 0, enable: false }); // clearing WAK_STS first
    expect(decodeSleepControl(0xff)).toEqual({ sleepType: 7, enable: true });
    expect(decodeSleepControl(0x20)).toEqual({ sleepType: 0, enable: true });
  });
});
