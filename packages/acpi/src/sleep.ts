/**
 * The hardware-reduced sleep registers (ACPI 6.5 §4.8.3.7), which replace PM1 control and status. The
 * 8-bit Sleep Control Register: bits 1-0 reserved, SLP_TYPx in bits 4-2, SLP_EN in bit 5, bits 7-6
 * reserved. (Bit 13 is SLP_EN in the legacy PM1 control register, which a hardware-reduced FADT does not
 * describe.) The Sleep Status Register has WAK_STS in bit 7. Linux powers off by writing
 * `(SLP_TYP of _S5_ << 2) | SLP_EN` to the control register (ACPICA acpi_hw_extended_sleep).
 */

/** SLP_TYP for S5 (soft off): the value the DSDT's `_S5_` package hands the OS. */
export const SLP_TYP_S5 = 5;
export const SLP_TYP_SHIFT = 2;
export const SLP_TYP_MASK = 0x1c;
/** SLP_EN: bit 5 of the sleep control register. */
export const SLP_EN = 0x20;
/** WAK_STS: bit 7 of the sleep status register. */
export const WAK_STS = 0x80;
/** The byte a guest writes to the sleep control register to power off: 0x34. */
export const S5_SLEEP_CONTROL_VALUE = (SLP_TYP_S5 << SLP_TYP_SHIFT) | SLP_EN;

export interface SleepControl {
  /** SLP_TYPx, 0-7. */
  sleepType: number;
  /** SLP_EN: the guest asks to enter `sleepType` now. */
  enable: boolean;
}

/** Decodes a byte written to the sleep control register. */
export function decodeSleepControl(value: number): SleepControl {
  return { sleepType: (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT, enable: (value & SLP_EN) !== 0 };
}
