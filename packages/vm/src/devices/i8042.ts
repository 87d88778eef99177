import type { BusDevice, ReadMirror } from '../bus.js';

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;

/** Status register bits (Linux drivers/input/serio/i8042.h). */
export const STR_OBF = 0x01; // output buffer full: a byte waits at port 0x60
export const STR_IBF = 0x02; // input buffer full: never, commands are taken at once
export const STR_SYS = 0x04; // system flag: POST passed
export const STR_CMDDAT = 0x08; // last write was a command (port 0x64)
export const STR_KEYLOCK = 0x10; // 1 = keyboard not inhibited
export const STR_AUXDATA = 0x20; // the byte in the output buffer came from the aux port
export const STR_TIMEOUT = 0x40; // the addressed PS/2 device did not answer

/** Controller configuration byte ("CTR") bits. */
export const CTR_KBDINT = 0x01;
export const CTR_AUXINT = 0x02;
export const CTR_SYSFLAG = 0x04;
export const CTR_KBDDIS = 0x10;
export const CTR_AUXDIS = 0x20;
export const CTR_XLATE = 0x40;

/** Controller commands written to port 0x64. */
export const Cmd = {
  READ_CTR: 0x20,
  WRITE_CTR: 0x60,
  AUX_DISABLE: 0xa7,
  AUX_ENABLE: 0xa8,
  AUX_TEST: 0xa9,
  SELF_TEST: 0xaa,
  KBD_TEST: 0xab,
  KBD_DISABLE: 0xad,
  KBD_ENABLE: 0xae,
  READ_OUTPUT_PORT: 0xd0,
  WRITE_OUTPUT_PORT: 0xd1,
  KBD_LOOP: 0xd2,
  AUX_LOOP: 0xd3,
  AUX_SEND: 0xd4,
  /** 0xf0-0xff pulse output-port lines low for 6 µs; bit 0 of the mask clear pulses the CPU reset line. 0xfe is the classic "reset CPU". */
  PULSE_FIRST: 0xf0,
  RESET_CPU: 0xfe,
} as const;

export const SELF_TEST_PASSED = 0x55;
/** Answer of a PS/2 port interface test meaning "clock line stuck high": nothing plugged in. */
export const PORT_TEST_NO_DEVICE = 0x02;
/** What a controller returns (with STR_TIMEOUT) when the addressed PS/2 device does not answer. */
export const NO_DEVICE_RESPONSE = 0xfe;

/** Output port bit 0: the CPU reset line (active low). */
const OUTPUT_PORT_RESET_N = 0x01;

export interface I8042Options {
  /** The guest asked the controller to reset the CPU (Linux `reboot=k`). */
  onReset(): void;
  /** Drives IRQ 1 (keyboard) or IRQ 12 (aux) lines; called only when a level changes. */
  setIrq?(irq: number, level: boolean): void;
  /** Receives the status register (port 0x64, offset 0), whose read never has a side effect, after every change. */
  statusMirror?: ReadMirror;
}

/**
 * An i8042 PS/2 controller with nothing plugged into either port. Every controller command is
 * answered at once, so Linux's i8042 probe completes without waiting on a timeout; bytes sent to
 * the (absent) keyboard or mouse come back as a timeout, so atkbd/psmouse give up immediately.
 * Reset (command 0xfe, a pulse of output-port bit 0, or writing the output port with bit 0 clear)
 * calls `onReset`. Status never shows "input buffer full", so Linux's `kb_wait()` before the reset
 * write does not spin. Registered as two one-byte devices, at 0x60 and 0x64 (0x61 belongs to the PIT).
 */
export class I8042 {
  private ctr = CTR_KBDINT | CTR_SYSFLAG | CTR_XLATE;
  private outputPort = 0x03 | OUTPUT_PORT_RESET_N; // A20 enabled, not in reset
  private status = STR_SYS | STR_KEYLOCK;
  private out: number | undefined;
  private outIsAux = false;
  private lastOut = 0;
  /** Command waiting for its parameter byte on port 0x60. */
  private pendingCommand: number | undefined;
  private kbdIrq = false;
  private auxIrq = false;

  /** Port 0x60. */
  readonly data: BusDevice = {
    read: (_offset, data) => {
      data.fill(0xff);
      data[0] = this.readData();
      this.updateIrqs();
    },
    write: (_offset, data) => {
      this.writeData(data[0]);
      this.updateIrqs();
    },
  };

  /** Port 0x64. */
  readonly command: BusDevice = {
    read: (_offset, data) => {
      data.fill(0xff);
      data[0] = this.statusRegister();
    },
    write: (_offset, data) => {
      this.writeCommand(data[0]);
      this.updateIrqs();
    },
  };

  constructor(private readonly opts: I8042Options) {
    this.opts.statusMirror?.publish(0, this.statusRegister());
  }

  /** Port 0x64 as read (no side effect). */
  private statusRegister(): number {
    return this.status | (this.out !== undefined ? STR_OBF : 0) | (this.out !== undefined && this.outIsAux ? STR_AUXDATA : 0);
  }

  private readData(): number {
    if (this.out === undefined) return this.lastOut; // a real 8042 returns the stale latch
    const v = this.out;
    this.out = undefined;
    this.status &= ~STR_TIMEOUT;
    return v;
  }

  private respond(byte: number, fromAux = false, timeout = false): void {
    this.out = byte & 0xff;
    this.lastOut = this.out;
    this.outIsAux = fromAux;
    if (timeout) this.status |= STR_TIMEOUT;
    else this.status &= ~STR_TIMEOUT;
  }

  private writeCommand(cmd: number): void {
    this.status |= STR_CMDDAT;
    this.pendingCommand = undefined;
    switch (cmd) {
      case Cmd.READ_CTR:
        this.respond(this.ctr);
        return;
      case Cmd.WRITE_CTR:
      case Cmd.WRITE_OUTPUT_PORT:
      case Cmd.KBD_LOOP:
      case Cmd.AUX_LOOP:
      case Cmd.AUX_SEND:
        this.pendingCommand = cmd;
        return;
      case Cmd.AUX_DISABLE:
        this.ctr |= CTR_AUXDIS;
        return;
      case Cmd.AUX_ENABLE:
        this.ctr &= ~CTR_AUXDIS;
        return;
      case Cmd.KBD_DISABLE:
        this.ctr |= CTR_KBDDIS;
        return;
      case Cmd.KBD_ENABLE:
        this.ctr &= ~CTR_KBDDIS;
        return;
      case Cmd.SELF_TEST:
        this.respond(SELF_TEST_PASSED);
        return;
      case Cmd.KBD_TEST:
      case Cmd.AUX_TEST:
        this.respond(PORT_TEST_NO_DEVICE);
        return;
      case Cmd.READ_OUTPUT_PORT:
        this.respond(this.outputPort);
        return;
      default:
        if (cmd >= Cmd.PULSE_FIRST && (cmd & OUTPUT_PORT_RESET_N) === 0) this.opts.onReset();
        // Other commands (password, vendor extensions) are not implemented: no response, as on
        // controllers that lack them.
        return;
    }
  }

  private writeData(value: number): void {
    this.status &= ~STR_CMDDAT;
    const cmd = this.pendingCommand;
    this.pendingCommand = undefined;
    switch (cmd) {
      case Cmd.WRITE_CTR:
        this.ctr = value;
        return;
      case Cmd.WRITE_OUTPUT_PORT:
        this.outputPort = value;
        if ((value & OUTPUT_PORT_RESET_N) === 0) this.opts.onReset();
        return;
      case Cmd.KBD_LOOP:
        this.respond(value, false);
        return;
      case Cmd.AUX_LOOP:
        this.respond(value, true);
        return;
      case Cmd.AUX_SEND:
        this.respond(NO_DEVICE_RESPONSE, true, true);
        return;
      default:
        // A byte for the keyboard itself; there is none.
        this.respond(NO_DEVICE_RESPONSE, false, true);
        return;
    }
  }

  /** Ends every state change (all of them come through the data and command ports): publishes the
   * status register to the mirror, then drives the interrupt lines. */
  private updateIrqs(): void {
    this.opts.statusMirror?.publish(0, this.statusRegister());
    const full = this.out !== undefined;
    const kbd = full && !this.outIsAux && (this.ctr & CTR_KBDINT) !== 0;
    const aux = full && this.outIsAux && (this.ctr & CTR_AUXINT) !== 0;
    if (kbd !== this.kbdIrq) {
      this.kbdIrq = kbd;
      this.opts.setIrq?.(I8042_KBD_IRQ, kbd);
    }
    if (aux !== this.auxIrq) {
      this.auxIrq = aux;
      this.opts.setIrq?.(I8042_AUX_IRQ, aux);
    }
  }
}
