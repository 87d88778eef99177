import type { VirtioDevice } from '@hype/virtio';
import { openDiskDevice } from '@hype/virtio-blk/node';
import { EntropyDevice } from '@hype/virtio-rng';
import { createVm, describeExit, formatInternalError, probeKvmDevice, VmInputError, type VmExit } from '@hype/vm';
import type { VmOutcome } from './exit-codes.js';
import type { CliVmConfig, CreateVm } from './ports.js';
import { UsageError } from './usage-error.js';

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

/**
 * The devices `hype run` attaches after the console: the disks in order (vda, vdb, ...), then the
 * entropy device unless --rng off. A disk that does not open is the user's to fix (UsageError); what
 * was opened already is closed again.
 */
export async function openDevices(config: CliVmConfig): Promise<VirtioDevice[]> {
  const devices: VirtioDevice[] = [];
  try {
    for (const [index, disk] of config.disks.entries()) {
      devices.push(
        await openDiskDevice(disk, index).catch((error: unknown) => {
          throw new UsageError((error as Error).message, { cause: error });
        }),
      );
    }
  } catch (error) {
    for (const device of devices) await device.close?.();
    throw error;
  }
  if (config.rng) devices.push(new EntropyDevice());
  return devices;
}

/** createVm from @hype/vm, driven as the CLI needs; its input errors become UsageErrors (exit 2). */
export const defaultCreateVm: CreateVm = async (config, options) => {
  const { disks: _disks, rng: _rng, ...vmConfig } = config;
  const devices = await openDevices(config);
  let machine;
  try {
    machine = await createVm({ ...vmConfig, devices }, options);
  } catch (error) {
    if (error instanceof VmInputError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
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
