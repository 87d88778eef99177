/**
 * Fixed ACPI Description Table, revision 6.5 layout (ACPI 6.5 §5.2.9), for a hardware-reduced platform:
 * no PM1/GPE register blocks, no SCI, no FACS. What remains is the DSDT pointer, the flags, the optional
 * reset register, the sleep control/status registers (how the guest powers off) and the hypervisor ID.
 */
import { ascii, assertAddress, assertUint, dataView, setU64 } from './bytes.js';
import { writeIoPortGas } from './gas.js';
import { SDT_HEADER_SIZE, finishSdt } from './sdt.js';

export const FADT = {
  firmwareCtrl: SDT_HEADER_SIZE,
  dsdt: 40,
  preferredPmProfile: 45,
  sciInt: 46,
  smiCmd: 48,
  pm1aEvtBlk: 56,
  pm1aCntBlk: 64,
  pmTmrBlk: 76,
  gpe0Blk: 80,
  century: 108,
  iapcBootArch: 109,
  flags: 112,
  resetReg: 116,
  resetValue: 128,
  armBootArch: 129,
  minorVersion: 131,
  xFirmwareCtrl: 132,
  xDsdt: 140,
  xPm1aEvtBlk: 148,
  xPm1aCntBlk: 172,
  xPmTmrBlk: 208,
  xGpe0Blk: 220,
  sleepControlReg: 244,
  sleepStatusReg: 256,
  hypervisorVendorId: 268,
} as const;
export const FADT_SIZE = 276;
export const FADT_REVISION = 6;
export const FADT_MINOR_VERSION = 5;

/** Fixed Feature Flags (§5.2.9.3) set here. */
export const FadtFlag = {
  /** No fixed-feature power button (a control method one, or none). */
  PWR_BUTTON: 1 << 4,
  SLP_BUTTON: 1 << 5,
  RESET_REG_SUP: 1 << 10,
  HW_REDUCED_ACPI: 1 << 20,
} as const;

/** IA-PC Boot Architecture Flags (§5.2.9.3). */
export const IapcBootArch = {
  LEGACY_DEVICES: 1 << 0,
  I8042: 1 << 1,
  VGA_NOT_PRESENT: 1 << 2,
  MSI_NOT_SUPPORTED: 1 << 3,
  PCIE_ASPM_CONTROLS: 1 << 4,
  CMOS_RTC_NOT_PRESENT: 1 << 5,
} as const;

/** Hypervisor Vendor Identity (8 bytes): tells the guest which VMM built the tables. */
export const HYPERVISOR_VENDOR_ID = 'HYPE-KVM';

export interface FadtOptions {
  /** X_DSDT (the 32-bit DSDT field stays 0, as the spec asks when X_DSDT is set). */
  dsdtAddress: number;
  sleepControlPort: number;
  sleepStatusPort: number;
  /** RESET_REG (8-bit I/O port) and RESET_VALUE; sets RESET_REG_SUP. */
  reset?: { port: number; value: number };
  /** An i8042 keyboard controller at 0x60/0x64 (IAPC_BOOT_ARCH 8042). */
  i8042: boolean;
  /** A CMOS RTC at 0x70 (otherwise CMOS_RTC_NOT_PRESENT). */
  rtc: boolean;
  /** ISA-style devices (serial port, i8042) are present (IAPC_BOOT_ARCH LEGACY_DEVICES). */
  legacyDevices: boolean;
  /** MSI can be enabled on PCI devices (otherwise MSI_NOT_SUPPORTED). */
  msi: boolean;
  hypervisorVendorId?: string;
}

export function iapcBootArchFlags(o: Pick<FadtOptions, 'i8042' | 'rtc' | 'legacyDevices' | 'msi'>): number {
  return (
    IapcBootArch.VGA_NOT_PRESENT |
    (o.legacyDevices ? IapcBootArch.LEGACY_DEVICES : 0) |
    (o.i8042 ? IapcBootArch.I8042 : 0) |
    (o.rtc ? 0 : IapcBootArch.CMOS_RTC_NOT_PRESENT) |
    (o.msi ? 0 : IapcBootArch.MSI_NOT_SUPPORTED)
  );
}

export function buildFadt(o: FadtOptions): Uint8Array {
  assertAddress(o.dsdtAddress, 'DSDT address');
  const table = new Uint8Array(FADT_SIZE);
  const dv = dataView(table);
  dv.setUint16(FADT.iapcBootArch, iapcBootArchFlags(o), true);
  let flags = FadtFlag.HW_REDUCED_ACPI | FadtFlag.PWR_BUTTON | FadtFlag.SLP_BUTTON;
  if (o.reset) {
    assertUint(o.reset.value, 8, 'reset value');
    writeIoPortGas(dv, FADT.resetReg, o.reset.port);
    dv.setUint8(FADT.resetValue, o.reset.value);
    flags |= FadtFlag.RESET_REG_SUP;
  }
  dv.setUint32(FADT.flags, flags >>> 0, true);
  dv.setUint8(FADT.minorVersion, FADT_MINOR_VERSION);
  setU64(dv, FADT.xDsdt, o.dsdtAddress);
  writeIoPortGas(dv, FADT.sleepControlReg, o.sleepControlPort);
  writeIoPortGas(dv, FADT.sleepStatusReg, o.sleepStatusPort);
  table.set(ascii(o.hypervisorVendorId ?? HYPERVISOR_VENDOR_ID, 8), FADT.hypervisorVendorId);
  return finishSdt(table, { signature: 'FACP', revision: FADT_REVISION, oemTableId: 'HYPEFACP' });
}
