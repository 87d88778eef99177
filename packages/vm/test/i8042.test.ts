import { describe, expect, it } from 'vitest';
import {
  CTR_AUXDIS,
  CTR_AUXINT,
  Cmd,
  I8042,
  I8042_AUX_IRQ,
  I8042_KBD_IRQ,
  NO_DEVICE_RESPONSE,
  PORT_TEST_NO_DEVICE,
  SELF_TEST_PASSED,
  STR_AUXDATA,
  STR_IBF,
  STR_OBF,
  STR_TIMEOUT,
} from '../src/devices/i8042.js';

function setup() {
  let resets = 0;
  const irqs: [number, boolean][] = [];
  const dev = new I8042({ onReset: () => resets++, setIrq: (irq, l) => irqs.push([irq, l]) });
  const status = () => {
    const d = new Uint8Array(1);
    dev.command.read(0, d);
    return d[0];
  };
  const readData = () => {
    const d = new Uint8Array(1);
    dev.data.read(0, d);
    return d[0];
  };
  const cmd = (v: number) => dev.command.write(0, Uint8Array.of(v));
  const writeData = (v: number) => dev.data.write(0, Uint8Array.of(v));
  /** Linux i8042_command(): command, optional parameter, then wait for OBF and read the answer. */
  const command = (c: number, param?: number) => {
    cmd(c);
    if (param !== undefined) writeData(param);
    return status() & STR_OBF ? readData() : undefined;
  };
  return { dev, status, readData, cmd, writeData, command, irqs, resets: () => resets };
}

describe('I8042', () => {
  it('resets the guest on command 0xfe', () => {
    const t = setup();
    t.cmd(Cmd.RESET_CPU);
    expect(t.resets()).toBe(1);
  });

  it('resets on any output-port pulse that includes bit 0, not on others', () => {
    const t = setup();
    t.cmd(0xf0);
    t.cmd(0xfc);
    expect(t.resets()).toBe(2);
    t.cmd(0xff);
    t.cmd(0xfd);
    expect(t.resets()).toBe(2);
  });

  it('resets when the output port is written with the reset line (bit 0) low', () => {
    const t = setup();
    t.cmd(Cmd.WRITE_OUTPUT_PORT);
    t.writeData(0x03);
    expect(t.resets()).toBe(0);
    expect(t.command(Cmd.READ_OUTPUT_PORT)).toBe(0x03);
    t.cmd(Cmd.WRITE_OUTPUT_PORT);
    t.writeData(0x02);
    expect(t.resets()).toBe(1);
  });

  it('never reports input-buffer-full, so Linux kb_wait() before a reset does not spin', () => {
    const t = setup();
    expect(t.status() & STR_IBF).toBe(0);
    t.cmd(Cmd.WRITE_CTR);
    expect(t.status() & STR_IBF).toBe(0);
  });

  it('answers the probe sequence of Linux i8042_probe at once', () => {
    const t = setup();
    // i8042_controller_check(): flush finds nothing
    expect(t.status() & STR_OBF).toBe(0);
    expect(t.command(Cmd.SELF_TEST)).toBe(SELF_TEST_PASSED);
    const ctr = t.command(Cmd.READ_CTR)!;
    expect(ctr).toBeDefined();
    expect(t.command(Cmd.READ_CTR)).toBe(ctr); // "stable CTR read"
    t.command(Cmd.WRITE_CTR, ctr | CTR_AUXDIS);
    expect(t.command(Cmd.READ_CTR)).toBe(ctr | CTR_AUXDIS);
    // i8042_check_aux(): loop returns the byte from the aux side
    t.cmd(Cmd.AUX_LOOP);
    t.writeData(0x5a);
    expect(t.status() & (STR_OBF | STR_AUXDATA)).toBe(STR_OBF | STR_AUXDATA);
    expect(t.readData()).toBe(0x5a);
    t.cmd(Cmd.AUX_DISABLE);
    expect(t.command(Cmd.READ_CTR)! & CTR_AUXDIS).toBe(CTR_AUXDIS);
    t.cmd(Cmd.AUX_ENABLE);
    expect(t.command(Cmd.READ_CTR)! & CTR_AUXDIS).toBe(0);
    expect(t.command(Cmd.KBD_TEST)).toBe(PORT_TEST_NO_DEVICE);
    expect(t.command(Cmd.AUX_TEST)).toBe(PORT_TEST_NO_DEVICE);
  });

  it('reports a timeout for bytes sent to the absent keyboard and mouse', () => {
    const t = setup();
    t.writeData(0xf2); // ATKBD_CMD_GETID
    expect(t.status() & (STR_OBF | STR_TIMEOUT | STR_AUXDATA)).toBe(STR_OBF | STR_TIMEOUT);
    expect(t.readData()).toBe(NO_DEVICE_RESPONSE);
    expect(t.status() & (STR_OBF | STR_TIMEOUT)).toBe(0);
    t.cmd(Cmd.AUX_SEND);
    t.writeData(0xff);
    expect(t.status() & (STR_OBF | STR_TIMEOUT | STR_AUXDATA)).toBe(STR_OBF | STR_TIMEOUT | STR_AUXDATA);
    expect(t.readData()).toBe(NO_DEVICE_RESPONSE);
  });

  it('raises IRQ 1 for keyboard-side bytes and IRQ 12 for aux bytes, per the CTR enables', () => {
    const t = setup();
    t.writeData(0xf2); // kbd interrupt is enabled at reset
    expect(t.irqs).toEqual([[I8042_KBD_IRQ, true]]);
    t.readData();
    expect(t.irqs.at(-1)).toEqual([I8042_KBD_IRQ, false]);
    t.cmd(Cmd.AUX_LOOP);
    t.writeData(0xa5);
    expect(t.irqs).toHaveLength(2); // AUXINT off
    t.readData();
    const ctr = t.command(Cmd.READ_CTR)!;
    t.command(Cmd.WRITE_CTR, ctr | CTR_AUXINT);
    t.cmd(Cmd.AUX_LOOP);
    t.writeData(0xa5);
    expect(t.irqs.at(-1)).toEqual([I8042_AUX_IRQ, true]);
    expect(t.readData()).toBe(0xa5);
    expect(t.irqs.at(-1)).toEqual([I8042_AUX_IRQ, false]);
  });

  it('an empty output buffer reads back the stale latch; unknown commands give no answer', () => {
    const t = setup();
    expect(t.command(Cmd.SELF_TEST)).toBe(SELF_TEST_PASSED);
    expect(t.readData()).toBe(SELF_TEST_PASSED);
    expect(t.command(0x42)).toBeUndefined();
    expect(t.resets()).toBe(0);
  });
});
