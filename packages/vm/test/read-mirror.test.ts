// The device models' read mirror (ReadMirror; on KVM, @hype/kvm's PioReadMirror answers these reads on
// the vCPU threads): a register is published only while reading it has no side effect, the published
// value is what read() returns, and after every change (before the interrupt line moves) the mirror
// equals the model.
import { describe, expect, it } from 'vitest';
import type { ReadMirror } from '../src/bus.js';
import { Cmd, I8042, STR_OBF } from '../src/devices/i8042.js';
import {
  FCR_ENABLE_FIFO, IER_MSI, IER_RDI, IER_RLSI, IER_THRI, IIR_THRI, LCR_DLAB, LSR_DR, LSR_OE, LSR_TEMT, LSR_THRE, MCR_LOOP,
  MCR_OUT2, MCR_RTS, MSR_DCTS, UART_FIFO_SIZE, UART_PORT_COUNT, Uart8250, UartReg as R,
} from '../src/devices/uart8250.js';

/** A ReadMirror that records what is published, and counts publications. */
function recordingMirror() {
  const values = new Map<number, number | undefined>();
  let publications = 0;
  const mirror: ReadMirror = {
    publish: (offset, value) => {
      publications++;
      values.set(offset, value);
    },
  };
  return { mirror, values, publications: () => publications };
}

function uartSetup(options: { blockOutput?: () => boolean } = {}) {
  const rec = recordingMirror();
  const events: string[] = [];
  let uart!: Uart8250;
  /** The mirror must equal the model whenever the interrupt line moves (it is published first). */
  const checkMirror = () => {
    for (let reg = 0; reg < UART_PORT_COUNT; reg++) expect(rec.values.get(reg), `register ${reg}`).toBe(uart.sideEffectFreeRead(reg));
  };
  let onDrained: () => void = () => {};
  uart = new Uart8250({
    output: (byte) => {
      events.push(`out ${byte}`);
      return options.blockOutput?.() === true ? false : undefined;
    },
    setIrq: (level) => {
      checkMirror();
      events.push(`irq ${level}`);
    },
    onRxDrained: () => {
      events.push('drained');
      onDrained();
    },
    mirror: rec.mirror,
  });
  const rd = (reg: number) => {
    const d = new Uint8Array(1);
    uart.read(reg, d);
    return d[0];
  };
  const wr = (reg: number, v: number) => uart.write(reg, Uint8Array.of(v));
  return { uart, rec, events, rd, wr, checkMirror, setOnDrained: (f: () => void) => (onDrained = f) };
}

/** Everything the UART's state is made of (its fields), to see that a read changed nothing. */
const uartState = (uart: Uart8250) => JSON.stringify(Object.entries(uart).filter(([key]) => key !== 'opts'));

describe('Uart8250 read mirror', () => {
  it('publishes the reset state at construction: LSR, MSR, IIR, IER, LCR, MCR, SCR; never RBR', () => {
    const { rec } = uartSetup();
    expect(rec.values.get(R.LSR)).toBe(LSR_THRE | LSR_TEMT);
    expect(rec.values.get(R.IIR)).toBe(0x01);
    expect(rec.values.get(R.MCR)).toBe(MCR_OUT2);
    expect(rec.values.get(R.DATA)).toBeUndefined();
    for (const reg of [R.IER, R.IIR, R.LCR, R.MCR, R.LSR, R.MSR, R.SCR]) expect(rec.values.get(reg)).toBeDefined();
  });

  it('takes IIR away while it reports THRE (the read clears it), and publishes it again once read', () => {
    const { rec, rd, wr } = uartSetup();
    wr(R.IER, IER_THRI);
    expect(rec.values.get(R.IIR)).toBeUndefined();
    expect(rd(R.IIR) & 0x0f).toBe(IIR_THRI);
    expect(rec.values.get(R.IIR)).toBe(0x01);
    wr(R.DATA, 0x41); // transmitted at once: THRE pending again
    expect(rec.values.get(R.IIR)).toBeUndefined();
  });

  it('takes LSR away while an error bit is set (cleared by the read), and MSR while a delta bit is set', () => {
    const { rec, rd, wr } = uartSetup();
    wr(R.MCR, MCR_LOOP | MCR_OUT2);
    for (let i = 0; i < 2; i++) wr(R.DATA, i); // FIFO off: 1 byte deep, the second overruns
    expect(rec.values.get(R.LSR)).toBeUndefined();
    expect(rd(R.LSR) & LSR_OE).toBe(LSR_OE);
    expect(rec.values.get(R.LSR)).toBe(rd(R.LSR));
    expect(rec.values.get(R.LSR)! & LSR_DR).toBe(LSR_DR);
    wr(R.MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS); // CTS follows RTS: DCTS latched
    expect(rec.values.get(R.MSR)).toBeUndefined();
    expect(rd(R.MSR) & MSR_DCTS).toBe(MSR_DCTS);
    expect(rec.values.get(R.MSR)).toBe(rd(R.MSR));
  });

  it('publishes DLL at offset 0 only while DLAB is set, and follows DLAB for offset 1', () => {
    const { rec, wr } = uartSetup();
    wr(R.IER, IER_RDI);
    wr(R.LCR, LCR_DLAB | 0x03);
    wr(R.DATA, 0x01);
    wr(R.IER, 0x02);
    expect(rec.values.get(R.DATA)).toBe(0x01);
    expect(rec.values.get(R.IER)).toBe(0x02);
    wr(R.LCR, 0x03);
    expect(rec.values.get(R.DATA)).toBeUndefined();
    expect(rec.values.get(R.IER)).toBe(IER_RDI);
  });

  it('publishes host input (LSR.DR) before raising the interrupt that announces it', () => {
    const { uart, rec, events, wr } = uartSetup();
    wr(R.IER, IER_RDI);
    expect(uart.receive(Uint8Array.of(0x61))).toBe(1);
    expect(events.at(-1)).toBe('irq true'); // and setIrq checked the mirror when it was called
    expect(rec.values.get(R.LSR)! & LSR_DR).toBe(LSR_DR);
  });

  it('publishes THR full while the host output is blocked, and empty again at transmitterReady', () => {
    let block = true;
    const { uart, rec, wr } = uartSetup({ blockOutput: () => block });
    wr(R.DATA, 0x41);
    expect(rec.values.get(R.LSR)! & (LSR_THRE | LSR_TEMT)).toBe(0);
    block = false;
    uart.transmitterReady();
    expect(rec.values.get(R.LSR)! & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
  });

  it('random accesses and host events: the mirror always equals the model, and every published read is exactly read() with no side effect', () => {
    let seed = 4242;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    let block = false;
    const t = uartSetup({ blockOutput: () => block });
    // The host feeds input from onRxDrained at times (re-entering the model in the middle of a read).
    t.setOnDrained(() => {
      if (rnd() % 3 === 0) t.uart.receive(Uint8Array.of(rnd() & 0xff, rnd() & 0xff));
    });
    const interesting = [IER_THRI | IER_RDI | IER_RLSI | IER_MSI, MCR_LOOP | MCR_OUT2 | MCR_RTS, FCR_ENABLE_FIFO, LCR_DLAB | 3, 3];
    let mirrored = 0;
    for (let i = 0; i < 20_000; i++) {
      const reg = rnd() % UART_PORT_COUNT;
      const op = rnd() % 10;
      if (op < 4) t.wr(reg, rnd() % 3 === 0 ? interesting[rnd() % interesting.length] : rnd() & 0xff);
      else if (op < 8) t.rd(reg);
      else if (op === 8) t.uart.receive(new Uint8Array(rnd() % (UART_FIFO_SIZE + 2)).map(() => rnd() & 0xff));
      else {
        block = rnd() % 2 === 0;
        t.uart.transmitterReady();
      }
      t.checkMirror();
      // Each published register: a read returns the published value and changes nothing at all.
      for (let r = 0; r < UART_PORT_COUNT; r++) {
        const published = t.rec.values.get(r);
        if (published === undefined) continue;
        mirrored++;
        const before = uartState(t.uart);
        const events = t.events.length;
        expect(t.rd(r)).toBe(published);
        expect(uartState(t.uart)).toBe(before);
        expect(t.events.length).toBe(events); // no output, interrupt or drain callback
      }
    }
    expect(mirrored).toBeGreaterThan(50_000);
  });
});

describe('I8042 read mirror', () => {
  it('publishes the status register after every access, before the interrupt lines move', () => {
    const rec = recordingMirror();
    let dev!: I8042;
    const status = () => {
      const d = new Uint8Array(1);
      dev.command.read(0, d);
      return d[0];
    };
    dev = new I8042({ onReset: () => {}, setIrq: () => expect(rec.values.get(0)).toBe(status()), statusMirror: rec.mirror });
    expect(rec.values.get(0)).toBe(status());
    let seed = 99;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    const commands = [Cmd.READ_CTR, Cmd.WRITE_CTR, Cmd.SELF_TEST, Cmd.KBD_TEST, Cmd.AUX_SEND, Cmd.KBD_LOOP, Cmd.AUX_LOOP, Cmd.READ_OUTPUT_PORT];
    let full = 0;
    for (let i = 0; i < 5000; i++) {
      const op = rnd() % 4;
      if (op === 0) dev.command.write(0, Uint8Array.of(rnd() % 2 ? commands[rnd() % commands.length] : rnd() & 0xef)); // never 0xfx (reset)
      else if (op === 1) dev.data.write(0, Uint8Array.of(rnd() | 1)); // output port bit 0 (reset line) stays high
      else if (op === 2) dev.data.read(0, new Uint8Array(1));
      else dev.command.read(0, new Uint8Array(1));
      expect(rec.values.get(0)).toBe(status());
      if (status() & STR_OBF) full++;
    }
    expect(full).toBeGreaterThan(100);
  });
});
