import { describe, expect, it } from 'vitest';
import { EscapeFilter } from '../src/escape.js';

const bytes = (...values: (number | string)[]) =>
  Uint8Array.from(values.flatMap((v) => (typeof v === 'number' ? [v] : [...Buffer.from(v)])));
const CTRL_A = 0x01;

function push(filter: EscapeFilter, ...values: (number | string)[]) {
  const { forward, actions } = filter.push(bytes(...values));
  return { forward: [...forward], actions };
}

describe('EscapeFilter', () => {
  it('passes ordinary input through, Ctrl-C included', () => {
    expect(push(new EscapeFilter(), 'ls -l\r', 0x03, 0x04)).toEqual({ forward: [...bytes('ls -l\r', 0x03, 0x04)], actions: [] });
  });

  it('Ctrl-A x quits and drops everything after it', () => {
    const filter = new EscapeFilter();
    expect(push(filter, 'ab', CTRL_A, 'x', 'cd')).toEqual({ forward: [...bytes('ab')], actions: ['quit'] });
    expect(filter.quitRequested).toBe(true);
    expect(push(filter, 'more', CTRL_A, 'x')).toEqual({ forward: [], actions: [] });
  });

  it('Ctrl-A X quits too', () => {
    expect(push(new EscapeFilter(), CTRL_A, 'X').actions).toEqual(['quit']);
  });

  it('Ctrl-A Ctrl-A sends one Ctrl-A', () => {
    expect(push(new EscapeFilter(), 'a', CTRL_A, CTRL_A, 'b')).toEqual({ forward: [...bytes('a', CTRL_A, 'b')], actions: [] });
  });

  it('Ctrl-A Ctrl-A Ctrl-A x sends one Ctrl-A, then quits', () => {
    expect(push(new EscapeFilter(), CTRL_A, CTRL_A, CTRL_A, 'x')).toEqual({ forward: [CTRL_A], actions: ['quit'] });
  });

  it('Ctrl-A h and Ctrl-A ? ask for help and send nothing', () => {
    expect(push(new EscapeFilter(), CTRL_A, 'h', CTRL_A, '?')).toEqual({ forward: [], actions: ['help', 'help'] });
  });

  it('Ctrl-A followed by anything else sends both bytes', () => {
    expect(push(new EscapeFilter(), CTRL_A, 'c', CTRL_A, 0x03)).toEqual({ forward: [CTRL_A, ...bytes('c'), CTRL_A, 0x03], actions: [] });
  });

  it('keeps state across reads: Ctrl-A at the end of one chunk pairs with the next', () => {
    const filter = new EscapeFilter();
    expect(push(filter, 'a', CTRL_A)).toEqual({ forward: [...bytes('a')], actions: [] });
    expect(push(filter, 'x')).toEqual({ forward: [], actions: ['quit'] });

    const other = new EscapeFilter();
    expect(push(other, CTRL_A)).toEqual({ forward: [], actions: [] });
    expect(push(other, CTRL_A)).toEqual({ forward: [CTRL_A], actions: [] });
    expect(push(other, 'x')).toEqual({ forward: [...bytes('x')], actions: [] });
  });

  it('an x without a Ctrl-A before it is just an x', () => {
    expect(push(new EscapeFilter(), 'x', CTRL_A, CTRL_A, 'x').forward).toEqual([...bytes('x', CTRL_A, 'x')]);
  });

  it('never quits or drops bytes on input without Ctrl-A (every byte value)', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== CTRL_A);
    const { forward, actions } = new EscapeFilter().push(all);
    expect([...forward]).toEqual([...all]);
    expect(actions).toEqual([]);
  });
});
