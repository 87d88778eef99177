import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { COMMAND_EXIT_CODE_HELP, CommandExitCode, decideExit, EXIT_CODE_HELP, ExitCode, type VmOutcome } from '../src/exit-codes.js';

describe('decideExit', () => {
  it.each<[VmOutcome, Parameters<typeof decideExit>[1], number, string | undefined]>([
    [{ kind: 'poweroff', status: 0 }, undefined, 0, undefined],
    [{ kind: 'poweroff', status: 7 }, undefined, 1, 'guest powered off with status 7'],
    [{ kind: 'poweroff', status: 255 }, undefined, 1, 'guest powered off with status 255'],
    [{ kind: 'reboot' }, undefined, 3, 'guest rebooted (or panicked); hype does not restart it'],
    [{ kind: 'triple-fault' }, undefined, 4, 'guest triple fault (x86 shutdown): the guest crashed'],
    [{ kind: 'internal-error', message: 'emulation failure at rip 0xffffffff81000000: 0f 01 ca' }, undefined, 5,
      'internal error: emulation failure at rip 0xffffffff81000000: 0f 01 ca'],
    [{ kind: 'stopped' }, { kind: 'signal', signal: 'SIGINT' }, 130, 'stopped by SIGINT'],
    [{ kind: 'stopped' }, { kind: 'signal', signal: 'SIGTERM' }, 143, 'stopped by SIGTERM'],
    [{ kind: 'stopped' }, { kind: 'signal', signal: 'SIGHUP' }, 129, 'stopped by SIGHUP'],
    [{ kind: 'stopped' }, { kind: 'quit-key' }, 0, 'terminated by Ctrl-A x'],
    [{ kind: 'stopped' }, undefined, 5, 'internal error: the VM stopped without being asked to'],
    // The guest finished on its own before our stop took effect: its outcome wins.
    [{ kind: 'poweroff', status: 0 }, { kind: 'signal', signal: 'SIGTERM' }, 0, undefined],
  ])('%j (stop cause %j) -> exit %i', (outcome, cause, code, message) => {
    expect(decideExit(outcome, cause)).toEqual(message === undefined ? { code } : { code, message });
  });

  it('an internal error carries its register dump as detail', () => {
    expect(decideExit({ kind: 'internal-error', message: 'x', detail: 'RAX=0\nRBX=1' })).toEqual({
      code: 5,
      message: 'internal error: x',
      detail: 'RAX=0\nRBX=1',
    });
  });

  it('signal exit codes are 128 + the signal number', () => {
    expect(ExitCode.sighup).toBe(128 + 1);
    expect(ExitCode.sigint).toBe(128 + 2);
    expect(ExitCode.sigterm).toBe(128 + 15);
  });

  it('--help and README.md list every exit code', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const code of new Set(Object.values(ExitCode))) {
      expect(EXIT_CODE_HELP).toMatch(new RegExp(`(^ +|/)${code}(/|\\s)`, 'm'));
      expect(readme).toMatch(new RegExp(`\\| \`${code}\` \\|`));
    }
    for (const code of Object.values(CommandExitCode)) {
      expect(COMMAND_EXIT_CODE_HELP).toMatch(new RegExp(`^ +${code} `, 'm'));
      expect(readme).toMatch(new RegExp(`\\| \`${code}\` \\|`));
    }
  });
});
