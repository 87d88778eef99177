/**
 * The port behind the FADT's sleep control/status registers and its reset register (hardware-reduced
 * ACPI, @hype/acpi): a guest's `poweroff` writes SLP_TYP=S5 with SLP_EN (0x34) here, its ACPI reboot
 * writes the reset value. Other writes (Linux first clears WAK_STS with 0x80) are ignored; reads return
 * 0 (no wake status pending).
 */
import { SLP_TYP_S5, decodeSleepControl } from '@hype/acpi';
import type { BusDevice } from '../bus.js';

/** Where the VM puts the ACPI sleep control, sleep status and reset registers (as Cloud Hypervisor does). */
export const ACPI_POWER_PORT = 0x3c0;
/** The value the guest writes to the reset register (FADT RESET_VALUE). */
export const ACPI_RESET_VALUE = 1;

export interface AcpiPowerOptions {
  onPowerOff(): void;
  onReset(): void;
}

export class AcpiPowerPort implements BusDevice {
  constructor(private readonly opts: AcpiPowerOptions) {}

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset !== 0 || data.length !== 1) return;
    const value = data[0]!;
    if (value === ACPI_RESET_VALUE) {
      this.opts.onReset();
      return;
    }
    const { sleepType, enable } = decodeSleepControl(value);
    if (enable && sleepType === SLP_TYP_S5) this.opts.onPowerOff();
  }
}
