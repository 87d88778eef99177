import { S5_SLEEP_CONTROL_VALUE, WAK_STS } from '@hype/acpi';
import { describe, expect, it } from 'vitest';
import { ACPI_RESET_VALUE, AcpiPowerPort } from '../src/devices/acpi-power.js';

function port() {
  const events: string[] = [];
  const device = new AcpiPowerPort({ onPowerOff: () => events.push('poweroff'), onReset: () => events.push('reset') });
  return { device, events };
}

describe('ACPI sleep/reset port', () => {
  it("Linux's poweroff sequence: WAK_STS clear (ignored), then SLP_TYP=S5 | SLP_EN powers off", () => {
    const { device, events } = port();
    device.write(0, new Uint8Array([WAK_STS]));
    expect(events).toEqual([]);
    device.write(0, new Uint8Array([S5_SLEEP_CONTROL_VALUE]));
    expect(events).toEqual(['poweroff']);
  });

  it('the reset value reboots; S5 without SLP_EN, other sleep states, wider or offset writes are ignored', () => {
    const { device, events } = port();
    device.write(0, new Uint8Array([S5_SLEEP_CONTROL_VALUE & ~0x20]));
    device.write(0, new Uint8Array([(3 << 2) | 0x20]));
    device.write(0, new Uint8Array([S5_SLEEP_CONTROL_VALUE, 0]));
    device.write(1, new Uint8Array([S5_SLEEP_CONTROL_VALUE]));
    expect(events).toEqual([]);
    device.write(0, new Uint8Array([ACPI_RESET_VALUE]));
    expect(events).toEqual(['reset']);
  });

  it('reads 0 (no wake status)', () => {
    const data = new Uint8Array([0xff]);
    port().device.read(0, data);
    expect(data[0]).toBe(0);
  });
});
