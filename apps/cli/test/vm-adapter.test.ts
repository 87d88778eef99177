import { describe, expect, it } from 'vitest';
import { decideExit } from '../src/exit-codes.js';
import { fromVmExit, type VmExitLike } from '../src/vm-adapter.js';

const describe1 = (exit: VmExitLike) => `described ${exit.kind}`;
const format = (vcpu: number) => `vCPU ${vcpu} registers\nRAX=0`;

describe('fromVmExit: @hype/vm exit reasons -> exit codes', () => {
  it.each<[VmExitLike, number]>([
    [{ kind: 'poweroff', status: 0 }, 0],
    [{ kind: 'poweroff', status: 9 }, 1],
    [{ kind: 'reboot', source: 'i8042' }, 3],
    [{ kind: 'reboot', source: 'system-event' }, 3],
    [{ kind: 'shutdown', vcpu: 1 }, 4],
    [{ kind: 'internal-error', vcpu: 0, report: {} }, 5],
  ])('%j -> exit %i', (exit, code) => {
    expect(decideExit(fromVmExit(exit, describe1, format)).code).toBe(code);
  });

  it('a stop the CLI asked for keeps the cause (signal code)', () => {
    expect(decideExit(fromVmExit({ kind: 'stopped', reason: 'SIGTERM' }), { kind: 'signal', signal: 'SIGTERM' }).code).toBe(143);
  });

  it('an internal error keeps the one-line description and the register dump', () => {
    expect(fromVmExit({ kind: 'internal-error', vcpu: 2, report: {} }, describe1, format)).toEqual({
      kind: 'internal-error',
      message: 'described internal-error',
      detail: 'vCPU 2 registers\nRAX=0',
    });
  });
});
