import type { BusDevice, PostedWrites, ReadMirror } from '../bus.js';

/** COM1, as Linux's 8250 driver expects it on a PC. */
export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const UART_PORT_COUNT = 8;

/** Register offsets from the base port (16550A data sheet / Linux include/uapi/linux/serial_reg.h). */
export const UartReg = {
  /** Read: receive buffer (RBR). Write: transmit holding (THR). DLAB=1: divisor latch low. */
  DATA: 0,
  /** Interrupt enable (IER). DLAB=1: divisor latch high. */
  IER: 1,
  /** Read: interrupt identification (IIR). Write: FIFO control (FCR). */
  IIR: 2,
  FCR: 2,
  LCR: 3,
  MCR: 4,
  LSR: 5,
  MSR: 6,
  SCR: 7,
} as const;

export const IER_RDI = 0x01; // received data available
export const IER_THRI = 0x02; // transmitter holding register empty
export const IER_RLSI = 0x04; // receiver line status
export const IER_MSI = 0x08; // modem status
/** A 16550A implements only the low four IER bits (Linux probes bit 6 to spot XScale UARTs). */
const IER_VALID = 0x0f;

export const IIR_NO_INT = 0x01;
export const IIR_MSI = 0x00;
export const IIR_THRI = 0x02;
export const IIR_RDI = 0x04;
export const IIR_RLSI = 0x06;
/** Both FIFO-enabled bits: what makes Linux's autoconfig report a 16550A. */
export const IIR_FIFO_ENABLED = 0xc0;

export const FCR_ENABLE_FIFO = 0x01;
export const FCR_CLEAR_RCVR = 0x02;
export const FCR_CLEAR_XMIT = 0x04;

export const LCR_DLAB = 0x80;

export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;
const MCR_VALID = 0x1f;

export const LSR_DR = 0x01; // data ready
export const LSR_OE = 0x02; // overrun error
export const LSR_THRE = 0x20; // transmit holding register empty
export const LSR_TEMT = 0x40; // transmitter empty
/** Error bits that raise the line-status interrupt and clear on an LSR read. */
const LSR_ERRORS = 0x1e;

export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;

/** Receive FIFO depth in FIFO mode. Larger than a real 16550A's 16 so pasted input needs fewer interrupts (as vm-superio). */
export const UART_FIFO_SIZE = 64;

export interface UartOptions {
  /**
   * Receives every byte the guest transmits (not called in loopback mode). Returning false says the
   * host cannot take more for now: the byte is kept, but THR stays full (LSR.THRE/TEMT clear, no THRE
   * interrupt) until `transmitterReady()`, so a driver that waits for THRE waits, as on a line that
   * cannot send. Bytes a driver writes anyway still reach `output`, which must bound them itself.
   */
  output(byte: number): boolean | void;
  /** Drives the UART's interrupt line; called only when the level changes. */
  setIrq(level: boolean): void;
  /**
   * Called when the receive buffer has room again (the guest emptied it, flushed it, enabled the
   * FIFO or left loopback), so the host can feed more input. May call `receive` synchronously.
   */
  onRxDrained?(): void;
  /**
   * Receives the value of every register whose read has no side effect, offsets 0-7, after every change
   * (see the class comment); `undefined` for a register while reading it changes something.
   */
  mirror?: ReadMirror;
  /**
   * Told whether THR writes may be posted (delivered late, in order): while the transmit interrupt is
   * off, outside loopback and with the divisor latch closed, a THR write only hands a byte to `output`
   * (Linux's printk console writes this way: interrupts masked, polling LSR). See the class comment.
   */
  postedWrites?: PostedWrites;
}

/**
 * A 16550A UART (Linux 8250 driver). Transmission is instantaneous while the host takes output: THR is
 * empty again by the time the guest looks. When the host's output stops draining, THR stays full until
 * it does (see `UartOptions.output`). The interrupt line is a level computed from the
 * register state after every access, with the 16550A priorities (line status > received data >
 * THR empty > modem status), the same model QEMU's serial.c uses. The modem inputs of an idle line
 * are CTS, DSR and DCD asserted; in loopback they follow the MCR outputs.
 *
 * The read mirror (`UartOptions.mirror`): after every change of state the model publishes, for each
 * register, what a read returns if that read changes nothing (`sideEffectFreeRead`, the same code
 * `read()` uses), and `undefined` otherwise: RBR (reading it pops the receive FIFO), IIR while it reports
 * "THR empty" (the read clears that interrupt), LSR while an error bit is set (cleared by the read), MSR
 * while a delta bit is set (likewise). Every path that changes state ends in `updateIrq()`, which
 * publishes first and only then drives the interrupt line. So a vCPU that reads a published value reads
 * what `read()` would have returned at some instant consistent with its own program order: its own
 * accesses that change state exit to this model synchronously and are published before it resumes;
 * another vCPU's change is published before that vCPU resumes (until then the read orders before the
 * change); host-side changes (input arriving, the output draining) are published before the interrupt
 * that announces them is raised. A stale value can only be one that was true a moment earlier, and the
 * guest can only read it: nothing it does through the mirror reaches the model.
 * The guarantee is per register: the registers are published one after another, so a vCPU reading two of
 * them while the host changes state (input arriving) may see one from after the change and one from
 * before, a pair no single instant had. Linux reads the UART under its port lock from one vCPU and acts
 * on an interrupt that is raised only after the whole publication; a guest that polls two registers
 * across such a change sees the change on its next read, as it would on hardware polled a moment later.
 *
 * Posted THR writes (`UartOptions.postedWrites`): THR is posted while a write to it changes nothing the
 * guest observes: THRI off in IER (so no THRE interrupt and IIR is unchanged), not in loopback (the byte
 * would land in RBR), DLAB clear (offset 0 is DLL then) and output not blocked. Every way out of that state
 * is a write to IER, LCR or MCR (not posted: it reaches the model, which withdraws first) or the host
 * refusing output. The one effect that comes late is that refusal: a byte `output` refuses while posted
 * writes are delivered fills THR from then on, and the bytes posted after it still reach `output` (which
 * bounds them, see `output`), as bytes a driver writes without waiting for THRE do.
 */
export class Uart8250 implements BusDevice {
  private ier = 0;
  private lcr = 0x03; // 8N1
  private mcr = MCR_OUT2;
  private lsr = LSR_THRE | LSR_TEMT;
  private msr = MSR_DCD | MSR_DSR | MSR_CTS;
  private scr = 0;
  private dll = 0x0c; // 9600 baud
  private dlm = 0;
  private fcr = 0;
  /** "THR empty" interrupt pending: set when THR empties or THRI gets enabled, cleared by an IIR read reporting it or a THR write. */
  private thrPending = false;
  private readonly rx: number[] = [];
  private irqLevel = false;
  /** The host refused more output: THR stays full until transmitterReady(). */
  private txBlocked = false;

  constructor(private readonly opts: UartOptions) {
    this.publish();
  }

  read(offset: number, data: Uint8Array): void {
    // Wider accesses reach consecutive registers, as on an 8-bit ISA device.
    for (let i = 0; i < data.length; i++) data[i] = this.readRegister(offset + i);
    this.updateIrq();
  }

  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writeRegister(offset + i, data[i]);
    this.updateIrq();
  }

  /** Free space in the receive buffer (1 byte deep while the FIFO is disabled). */
  rxSpace(): number {
    if (this.loopback) return 0;
    return this.rxCapacity - this.rx.length;
  }

  /**
   * Host input for the guest. Accepts what fits, returns how many bytes were taken; the caller
   * keeps the rest for `onRxDrained`. Ignored in loopback mode (the line is disconnected).
   */
  receive(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.rxSpace());
    for (let i = 0; i < n; i++) this.rx.push(bytes[i]);
    if (n > 0) {
      this.lsr |= LSR_DR;
      this.updateIrq();
    }
    return n;
  }

  /** The host can take output again after `output` returned false: THR empties (THRE interrupt if enabled). */
  transmitterReady(): void {
    if (!this.txBlocked) return;
    this.txBlocked = false;
    this.lsr |= LSR_THRE | LSR_TEMT;
    if (this.ier & IER_THRI) this.thrPending = true;
    this.updateIrq();
  }

  /** The interrupt line's current level. */
  get irq(): boolean {
    return this.irqLevel;
  }

  private get dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE_FIFO) !== 0;
  }

  private get rxCapacity(): number {
    return this.fifoEnabled ? UART_FIFO_SIZE : 1;
  }

  /**
   * What reading `reg` returns when the read changes nothing, or undefined when it has a side effect
   * (then readRegister does the rest). The values the read mirror publishes.
   */
  sideEffectFreeRead(reg: number): number | undefined {
    switch (reg) {
      case UartReg.DATA:
        return this.dlab ? this.dll : undefined; // RBR: pops the receive FIFO
      case UartReg.IER:
        return this.dlab ? this.dlm : this.ier;
      case UartReg.IIR: {
        const iir = this.iir();
        if ((iir & 0x0f) === IIR_THRI) return undefined; // reporting THRE clears it
        return iir | (this.fifoEnabled ? IIR_FIFO_ENABLED : 0);
      }
      case UartReg.LCR:
        return this.lcr;
      case UartReg.MCR:
        return this.mcr;
      case UartReg.LSR:
        return this.lsr & LSR_ERRORS ? undefined : this.lsr; // error bits clear on read
      case UartReg.MSR:
        return this.msr & MSR_DELTAS ? undefined : this.msr; // delta bits clear on read
      case UartReg.SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private readRegister(reg: number): number {
    const value = this.sideEffectFreeRead(reg);
    if (value !== undefined) return value;
    switch (reg) {
      case UartReg.DATA:
        return this.readRbr();
      case UartReg.IIR: {
        const iir = this.iir();
        if ((iir & 0x0f) === IIR_THRI) this.thrPending = false;
        return iir | (this.fifoEnabled ? IIR_FIFO_ENABLED : 0);
      }
      case UartReg.LSR: {
        const lsr = this.lsr;
        this.lsr &= ~LSR_ERRORS;
        return lsr;
      }
      case UartReg.MSR: {
        const msr = this.msr;
        this.msr &= ~MSR_DELTAS;
        return msr;
      }
      default:
        return 0xff;
    }
  }

  private readRbr(): number {
    const byte = this.rx.length > 0 ? this.rx.shift()! : 0;
    if (this.rx.length === 0) {
      this.lsr &= ~LSR_DR;
      this.opts.onRxDrained?.();
    }
    return byte;
  }

  private writeRegister(reg: number, value: number): void {
    switch (reg) {
      case UartReg.DATA:
        if (this.dlab) this.dll = value;
        else this.transmit(value);
        return;
      case UartReg.IER:
        if (this.dlab) {
          this.dlm = value;
          return;
        }
        {
          const changed = (this.ier ^ value) & IER_THRI;
          this.ier = value & IER_VALID;
          // Enabling THRI while THR is empty raises the THRE interrupt again even if an IIR read
          // had consumed it: Linux's UART_BUG_THRE / UART_BUG_TXEN probes in serial8250_do_startup
          // rely on it (QEMU serial.c does the same).
          if (changed) this.thrPending = (this.ier & IER_THRI) !== 0 && (this.lsr & LSR_THRE) !== 0;
        }
        return;
      case UartReg.FCR:
        this.writeFcr(value);
        return;
      case UartReg.LCR:
        this.lcr = value;
        return;
      case UartReg.MCR:
        this.writeMcr(value & MCR_VALID);
        return;
      case UartReg.LSR:
      case UartReg.MSR:
        return; // read-only (factory-test writes on real parts); ignored
      case UartReg.SCR:
        this.scr = value;
        return;
      default:
        return;
    }
  }

  private transmit(byte: number): void {
    this.thrPending = false;
    if (this.loopback) {
      if (this.rx.length < this.rxCapacity) this.rx.push(byte);
      else this.lsr |= LSR_OE;
      this.lsr |= LSR_DR;
    } else if (this.opts.output(byte) === false) {
      this.txBlocked = true;
    }
    if (this.txBlocked) {
      this.lsr &= ~(LSR_THRE | LSR_TEMT);
      return;
    }
    // Sent instantly: THR is empty again.
    if (this.ier & IER_THRI) this.thrPending = true;
  }

  private writeFcr(value: number): void {
    const toggledFifo = ((this.fcr ^ value) & FCR_ENABLE_FIFO) !== 0;
    const clear = toggledFifo || (value & FCR_CLEAR_RCVR) !== 0;
    if (clear) {
      this.rx.length = 0;
      this.lsr &= ~LSR_DR;
    }
    // FCR_CLEAR_XMIT: nothing to clear; bytes written are already the host's (a blocked THR stays blocked).
    this.fcr = value & ~(FCR_CLEAR_RCVR | FCR_CLEAR_XMIT);
    if (clear) this.notifyRxSpace();
  }

  private notifyRxSpace(): void {
    if (this.rxSpace() > 0) this.opts.onRxDrained?.();
  }

  private writeMcr(value: number): void {
    const before = this.modemInputs();
    const wasLoopback = this.loopback;
    this.mcr = value;
    if (wasLoopback && !this.loopback) this.notifyRxSpace();
    const after = this.modemInputs();
    let deltas = 0;
    if ((before ^ after) & MSR_CTS) deltas |= MSR_DCTS;
    if ((before ^ after) & MSR_DSR) deltas |= MSR_DDSR;
    if (before & MSR_RI && !(after & MSR_RI)) deltas |= MSR_TERI; // trailing edge only
    if ((before ^ after) & MSR_DCD) deltas |= MSR_DDCD;
    this.msr = after | (this.msr & MSR_DELTAS) | deltas;
  }

  /** CTS/DSR/RI/DCD as the UART sees them: wired to RTS/DTR/OUT1/OUT2 in loopback, an idle connected line otherwise. */
  private modemInputs(): number {
    if (!this.loopback) return MSR_DCD | MSR_DSR | MSR_CTS;
    let v = 0;
    if (this.mcr & MCR_RTS) v |= MSR_CTS;
    if (this.mcr & MCR_DTR) v |= MSR_DSR;
    if (this.mcr & MCR_OUT1) v |= MSR_RI;
    if (this.mcr & MCR_OUT2) v |= MSR_DCD;
    return v;
  }

  /** The highest-priority pending interrupt, as IIR bits 3:0. */
  private iir(): number {
    if (this.ier & IER_RLSI && this.lsr & LSR_ERRORS) return IIR_RLSI;
    if (this.ier & IER_RDI && this.lsr & LSR_DR) return IIR_RDI;
    if (this.ier & IER_THRI && this.thrPending) return IIR_THRI;
    if (this.ier & IER_MSI && this.msr & MSR_DELTAS) return IIR_MSI;
    return IIR_NO_INT;
  }

  /**
   * Whether a THR write now changes nothing the guest can observe (see the class comment): it may then
   * be delivered late. The value `postedWrites` is told.
   */
  thrWritePostable(): boolean {
    return !this.dlab && !this.loopback && (this.ier & IER_THRI) === 0 && !this.txBlocked;
  }

  /**
   * Publishes every register's side-effect-free read value to the mirror (undefined: not side-effect
   * free), and whether THR writes may be posted.
   */
  private publish(): void {
    const mirror = this.opts.mirror;
    if (mirror) for (let reg = 0; reg < UART_PORT_COUNT; reg++) mirror.publish(reg, this.sideEffectFreeRead(reg));
    this.opts.postedWrites?.post(UartReg.DATA, this.thrWritePostable());
  }

  /** Ends every state change: publishes to the read mirror, then drives the interrupt line (in that order). */
  private updateIrq(): void {
    this.publish();
    const level = this.iir() !== IIR_NO_INT;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.opts.setIrq(level);
    }
  }
}
