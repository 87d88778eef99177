import { describe, expect, it } from 'vitest';
import {
  FCR_CLEAR_RCVR,
  FCR_ENABLE_FIFO,
  IER_MSI,
  IER_RDI,
  IER_RLSI,
  IER_THRI,
  IIR_FIFO_ENABLED,
  IIR_MSI,
  IIR_NO_INT,
  IIR_RDI,
  IIR_RLSI,
  IIR_THRI,
  LCR_DLAB,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MCR_DTR,
  MCR_LOOP,
  MCR_OUT1,
  MCR_OUT2,
  MCR_RTS,
  MSR_CTS,
  MSR_DCD,
  MSR_DCTS,
  MSR_DDCD,
  MSR_DDSR,
  MSR_DSR,
  MSR_RI,
  MSR_TERI,
  UART_FIFO_SIZE,
  Uart8250,
  UartReg as R,
} from '../src/devices/uart8250.js';

function setup() {
  const out: number[] = [];
  const irqs: boolean[] = [];
  let drained = 0;
  const uart = new Uart8250({ output: (b) => void out.push(b), setIrq: (l) => irqs.push(l), onRxDrained: () => drained++ });
  const rd = (reg: number) => {
    const d = new Uint8Array(1);
    uart.read(reg, d);
    return d[0];
  };
  const wr = (reg: number, v: number) => uart.write(reg, Uint8Array.of(v));
  return { uart, out, irqs, rd, wr, drained: () => drained };
}

describe('Uart8250 registers', () => {
  it('has the reset state Linux expects: no interrupt, THR empty, modem lines up', () => {
    const { rd } = setup();
    expect(rd(R.IER)).toBe(0);
    expect(rd(R.IIR)).toBe(IIR_NO_INT);
    expect(rd(R.LSR)).toBe(LSR_THRE | LSR_TEMT);
    expect(rd(R.MSR)).toBe(MSR_DCD | MSR_DSR | MSR_CTS);
    expect(rd(R.MCR)).toBe(MCR_OUT2);
  });

  it('writes THR bytes to the sink', () => {
    const { out, wr } = setup();
    for (const c of 'abc') wr(R.DATA, c.charCodeAt(0));
    expect(String.fromCharCode(...out)).toBe('abc');
  });

  it('LCR, MCR (5 bits) and SCR read back what was written', () => {
    const { rd, wr } = setup();
    wr(R.LCR, 0x1b);
    expect(rd(R.LCR)).toBe(0x1b);
    wr(R.SCR, 0x5a);
    expect(rd(R.SCR)).toBe(0x5a);
    wr(R.MCR, 0xff);
    expect(rd(R.MCR)).toBe(0x1f);
  });

  it('IER keeps only the 16550A bits (Linux XScale probe writes bit 6)', () => {
    const { rd, wr } = setup();
    wr(R.IER, 0xff);
    expect(rd(R.IER)).toBe(0x0f);
    wr(R.IER, 0x40);
    expect(rd(R.IER)).toBe(0);
  });

  it('DLAB switches offsets 0 and 1 to the divisor latch without transmitting', () => {
    const { rd, wr, out } = setup();
    wr(R.LCR, LCR_DLAB | 0x03);
    expect(rd(0)).toBe(0x0c);
    wr(0, 0x01);
    wr(1, 0x02);
    expect(rd(0)).toBe(0x01);
    expect(rd(1)).toBe(0x02);
    expect(out).toEqual([]);
    wr(R.LCR, 0x03);
    expect(rd(R.IER)).toBe(0);
    wr(R.IER, IER_RDI);
    wr(R.LCR, LCR_DLAB);
    expect(rd(1)).toBe(0x02);
  });

  it('IIR reports FIFO enabled (16550A) only while FCR bit 0 is set', () => {
    const { rd, wr } = setup();
    wr(R.FCR, FCR_ENABLE_FIFO);
    expect(rd(R.IIR)).toBe(IIR_FIFO_ENABLED | IIR_NO_INT);
    wr(R.FCR, 0);
    expect(rd(R.IIR)).toBe(IIR_NO_INT);
  });

  it('passes Linux autoconfig: IER scratch test, loopback test, 16550A FIFO id, no EFR', () => {
    const { rd, wr } = setup();
    // serial8250 autoconfig(): IER test
    wr(R.IER, 0);
    expect(rd(R.IER) & 0x0f).toBe(0);
    wr(R.IER, 0x0f);
    expect(rd(R.IER) & 0x0f).toBe(0x0f);
    wr(R.IER, 0);
    // loopback test: MCR = LOOP | 0x0A -> MSR top nibble must be 0x90
    const saveMcr = rd(R.MCR);
    wr(R.MCR, MCR_LOOP | 0x0a);
    expect(rd(R.MSR) & 0xf0).toBe(0x90);
    wr(R.MCR, saveMcr);
    // FIFO type
    wr(R.FCR, FCR_ENABLE_FIFO);
    expect(rd(R.IIR) >> 6).toBe(3);
    // autoconfig_16550a(): EFR probes through offset 2 must read non-zero (no 16650 EFR)
    wr(R.LCR, 0x80);
    expect(rd(2)).not.toBe(0);
    wr(R.LCR, 0xbf);
    expect(rd(2)).not.toBe(0);
    wr(R.LCR, 0);
    // 16750 test: IIR bit 5 (64-byte FIFO) never set
    wr(R.FCR, FCR_ENABLE_FIFO | 0x20);
    expect(rd(R.IIR) & 0x20).toBe(0);
  });
});

describe('Uart8250 THRE interrupt', () => {
  it('raises THRE when THRI is enabled with THR empty; an IIR read reporting it clears it', () => {
    const { rd, wr, irqs } = setup();
    wr(R.IER, IER_THRI);
    expect(irqs).toEqual([true]);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_THRI);
    expect(irqs).toEqual([true, false]);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_NO_INT);
  });

  it('re-arms THRE when IER.THRI is written again (Linux UART_BUG_THRE / TXEN probes)', () => {
    const { rd, wr } = setup();
    // serial8250_do_startup(): THRE bug test
    wr(R.IER, IER_THRI);
    const iir1 = rd(R.IIR);
    wr(R.IER, 0);
    wr(R.IER, IER_THRI);
    const iir = rd(R.IIR);
    wr(R.IER, 0);
    const bugThre = !(iir1 & IIR_NO_INT) && iir & IIR_NO_INT;
    expect(bugThre).toBeFalsy();
    // TXEN test: enable THRI; LSR.TEMT and IIR must not say "no interrupt"
    wr(R.IER, IER_THRI);
    const lsr = rd(R.LSR);
    const iir2 = rd(R.IIR);
    wr(R.IER, 0);
    expect(lsr & LSR_TEMT && iir2 & IIR_NO_INT).toBeFalsy();
  });

  it('raises THRE after each transmitted byte while THRI is enabled', () => {
    const { rd, wr, irqs, out } = setup();
    wr(R.IER, IER_THRI);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_THRI); // line drops
    wr(R.DATA, 0x41); // line rises again: a fresh edge for the ISR
    expect(out).toEqual([0x41]);
    expect(irqs).toEqual([true, false, true]);
    wr(R.IER, 0); // driver stops TX
    expect(irqs).toEqual([true, false, true, false]);
  });

  it('does not raise THRE for transmits while THRI is disabled', () => {
    const { wr, irqs } = setup();
    wr(R.DATA, 0x41);
    expect(irqs).toEqual([]);
  });
});

describe('Uart8250 receive', () => {
  it('feeds host input to RBR with data-ready and an RDI interrupt', () => {
    const { uart, rd, wr, irqs, drained } = setup();
    wr(R.FCR, FCR_ENABLE_FIFO);
    wr(R.IER, IER_RDI);
    const drainedBefore = drained();
    expect(uart.receive(new Uint8Array())).toBe(0);
    expect(irqs).toEqual([]);
    expect(uart.receive(Uint8Array.of(0x61, 0x62, 0x63))).toBe(3);
    expect(irqs).toEqual([true]);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_RDI);
    for (const c of [0x61, 0x62, 0x63]) {
      expect(rd(R.LSR) & LSR_DR).toBe(LSR_DR);
      expect(rd(R.DATA)).toBe(c);
    }
    expect(rd(R.LSR) & LSR_DR).toBe(0);
    expect(irqs).toEqual([true, false]);
    expect(rd(R.IIR)).toBe(IIR_FIFO_ENABLED | IIR_NO_INT);
    expect(drained() - drainedBefore).toBe(1);
  });

  it('gives received data priority over THRE in IIR', () => {
    const { uart, rd, wr } = setup();
    wr(R.IER, IER_RDI | IER_THRI);
    uart.receive(Uint8Array.of(1));
    expect(rd(R.IIR) & 0x0f).toBe(IIR_RDI);
    rd(R.DATA);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_THRI);
  });

  it('accepts at most the FIFO size, and one byte while the FIFO is disabled', () => {
    const { uart, rd, wr } = setup();
    expect(uart.receive(Uint8Array.of(1, 2, 3))).toBe(1);
    expect(uart.rxSpace()).toBe(0);
    expect(rd(R.DATA)).toBe(1);
    wr(R.FCR, FCR_ENABLE_FIFO);
    const many = new Uint8Array(UART_FIFO_SIZE + 5).fill(7);
    expect(uart.receive(many)).toBe(UART_FIFO_SIZE);
    expect(uart.receive(Uint8Array.of(1))).toBe(0);
    rd(R.DATA);
    expect(uart.receive(Uint8Array.of(9, 9))).toBe(1);
  });

  it('FCR clear-receiver flushes the FIFO and data-ready', () => {
    const { uart, rd, wr, drained } = setup();
    wr(R.FCR, FCR_ENABLE_FIFO);
    uart.receive(Uint8Array.of(1, 2, 3));
    expect(rd(R.LSR) & LSR_DR).toBe(LSR_DR);
    const drainedBefore = drained();
    wr(R.FCR, FCR_ENABLE_FIFO | FCR_CLEAR_RCVR);
    expect(rd(R.LSR) & LSR_DR).toBe(0);
    expect(uart.rxSpace()).toBe(UART_FIFO_SIZE);
    expect(drained() - drainedBefore).toBe(1);
  });

  it('reading an empty RBR returns 0 and keeps LSR.DR clear', () => {
    const { rd } = setup();
    expect(rd(R.DATA)).toBe(0);
    expect(rd(R.LSR) & LSR_DR).toBe(0);
  });
});

describe('Uart8250 loopback (MCR bit 4)', () => {
  it('loops THR into RBR instead of the sink, with RDI', () => {
    const { rd, wr, out, irqs } = setup();
    wr(R.FCR, FCR_ENABLE_FIFO);
    wr(R.MCR, MCR_LOOP);
    wr(R.IER, IER_RDI);
    for (let v = 0; v < UART_FIFO_SIZE; v++) {
      wr(R.DATA, v);
      expect(rd(R.DATA)).toBe(v);
    }
    expect(out).toEqual([]);
    expect(irqs.filter((l) => l)).toHaveLength(UART_FIFO_SIZE);
    for (let v = 0; v < UART_FIFO_SIZE; v++) wr(R.DATA, v);
    for (let v = 0; v < UART_FIFO_SIZE; v++) {
      expect(rd(R.LSR) & LSR_DR).toBe(LSR_DR);
      expect(rd(R.DATA)).toBe(v);
    }
    expect(rd(R.LSR) & LSR_DR).toBe(0);
  });

  it('flags overrun (LSR.OE, line-status interrupt) when the looped FIFO is full; an LSR read clears it', () => {
    const { rd, wr } = setup();
    wr(R.MCR, MCR_LOOP);
    wr(R.IER, IER_RLSI | IER_RDI);
    wr(R.DATA, 1);
    wr(R.DATA, 2); // FIFO disabled: 1-byte buffer
    expect(rd(R.IIR) & 0x0f).toBe(IIR_RLSI);
    expect(rd(R.LSR) & LSR_OE).toBe(LSR_OE);
    expect(rd(R.LSR) & LSR_OE).toBe(0);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_RDI);
    expect(rd(R.DATA)).toBe(1);
  });

  it('wires MSR inputs to MCR outputs (CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2)', () => {
    const { rd, wr } = setup();
    wr(R.MCR, MCR_LOOP);
    expect(rd(R.MSR) & 0xf0).toBe(0);
    wr(R.MCR, MCR_LOOP | MCR_OUT2);
    expect(rd(R.MSR) & 0xf0).toBe(MSR_DCD);
    wr(R.MCR, MCR_LOOP | MCR_OUT1);
    expect(rd(R.MSR) & 0xf0).toBe(MSR_RI);
    wr(R.MCR, MCR_LOOP | MCR_DTR | MCR_RTS);
    expect(rd(R.MSR) & 0xf0).toBe(MSR_DSR | MSR_CTS);
  });

  it('latches MSR delta bits (TERI on the trailing RI edge only), clears them on read, and raises MSI', () => {
    const { rd, wr } = setup();
    rd(R.MSR);
    wr(R.IER, IER_MSI);
    wr(R.MCR, MCR_LOOP | MCR_OUT1); // inputs drop CTS/DSR/DCD, raise RI
    expect(rd(R.IIR) & 0x0f).toBe(IIR_MSI);
    expect(rd(R.MSR)).toBe(MSR_RI | MSR_DCTS | MSR_DDSR | MSR_DDCD);
    expect(rd(R.IIR) & 0x0f).toBe(IIR_NO_INT);
    wr(R.MCR, MCR_LOOP); // RI falls
    expect(rd(R.MSR)).toBe(MSR_TERI);
    expect(rd(R.MSR)).toBe(0);
  });

  it('ignores host input while in loopback, and asks for it again when loopback ends', () => {
    const { uart, drained } = setup();
    uart.write(R.MCR, Uint8Array.of(MCR_LOOP));
    expect(uart.receive(Uint8Array.of(1))).toBe(0);
    uart.write(R.MCR, Uint8Array.of(MCR_OUT2));
    expect(drained()).toBe(1);
    expect(uart.receive(Uint8Array.of(1))).toBe(1);
  });

  it('asks for more input when enabling the FIFO makes room', () => {
    const { uart, wr, drained } = setup();
    expect(uart.receive(Uint8Array.of(1, 2))).toBe(1);
    wr(R.FCR, FCR_ENABLE_FIFO);
    expect(drained()).toBe(1);
    expect(uart.receive(Uint8Array.of(2, 3))).toBe(2);
  });
});

describe('Uart8250 hostile accesses', () => {
  it('never throws on any register access pattern and keeps the line level consistent with IIR', () => {
    const { uart, rd, wr, irqs } = setup();
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    for (let i = 0; i < 20_000; i++) {
      const reg = rnd() % 8;
      if (rnd() % 2) wr(reg, rnd() & 0xff);
      else rd(reg);
      if (rnd() % 50 === 0) uart.receive(Uint8Array.of(rnd() & 0xff));
    }
    const level = irqs.length === 0 ? false : irqs[irqs.length - 1];
    expect(level).toBe(uart.irq);
    // A level only ever toggles.
    for (let i = 1; i < irqs.length; i++) expect(irqs[i]).not.toBe(irqs[i - 1]);
  });

  it('splits wider accesses over consecutive registers, all-ones past the last one', () => {
    const { uart } = setup();
    uart.write(R.LCR, Uint8Array.of(0x03, 0x0b)); // LCR then MCR
    const d = new Uint8Array(2);
    uart.read(R.LCR, d);
    expect([...d]).toEqual([0x03, 0x0b]);
    const e = new Uint8Array(2);
    uart.read(R.SCR, e);
    expect(e[1]).toBe(0xff);
  });
});
