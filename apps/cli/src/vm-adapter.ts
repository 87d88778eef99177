import { createVm, describeExit, formatInternalError, probeKvmDevice, type VmExit } from '@hype/vm';
import type { VmOutcome } from './exit-codes.js';
import type { CreateVm } from './ports.js';

/** Maps @hype/vm's exit reason to the CLI's outcome (and so to an exit code, see exit-codes.ts). */
export function fromVmExit(exit: VmExit): VmOutcome {
  switch (exit.kind) {
    case 'poweroff':
      return { kind: 'poweroff', status: exit.status };
    case 'reboot':
      return { kind: 'reboot' };
    case 'shutdown':
      return { kind: 'triple-fault' };
    case 'halted':
      return { kind: 'halted' };
    case 'internal-error':
      return { kind: 'internal-error', message: describeExit(exit), detail: formatInternalError(exit.vcpu, exit.report) };
    case 'stopped':
      return { kind: 'stopped' };
  }
}

/** createVm from @hype/vm, driven as the CLI needs. */
export const defaultCreateVm: CreateVm = async (config, options) => {
  const machine = await createVm(config, options);
  return {
    run: async () => fromVmExit(await machine.run()),
    writeConsole: (bytes) => machine.writeConsole(bytes),
    stop: () => machine.stop('stopped by the hype command'),
  };
};

/** Opens the KVM device and checks its API version (the native addon loads here). */
export function probeKvm(path: string): string | undefined {
  return probeKvmDevice(path);
}
