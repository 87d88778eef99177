import { readFileSync } from 'node:fs';
import { DEFAULT_AGENT_PORT } from '@hype/guest-agent';
import { rateLimitedLogger, type VirtioDevice } from '@hype/virtio';
import type { NetBackend, PortForward, VirtioNetDevice } from '@hype/virtio-net';
import { EntropyDevice } from '@hype/virtio-rng';
import type { VsockDevice } from '@hype/virtio-vsock';
import type { VsockUnixBridge } from '@hype/virtio-vsock/node';
import { createVm, describeExit, formatInternalError, probeKvmDevice, VmInputError, type VmExit } from '@hype/vm';
import type { VmOutcome } from './exit-codes.js';
import type { CliNic } from './net-options.js';
import type { CliAgent, CliVmConfig, CreateVm, VmLogger } from './ports.js';
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
 * The devices `hype run` attaches after the console: the disks in order (vda, vdb, ...), the entropy
 * device unless --rng off, the network interfaces, then a vsock device for a command (-- CMD) or --vsock. A disk that does not
 * open is the user's to fix (UsageError); what was opened already is closed again.
 *
 * The modules of the disk, network and vsock devices (and their host back ends: passt, TAP, sockets)
 * load only when the VM has such a device: a plain `hype run` does not carry their code (about 5 MiB of
 * the VMM's memory, and tens of ms of its start-up).
 */
export async function openDevices(config: CliVmConfig, logger: VmLogger): Promise<VirtioDevice[]> {
  const devices: VirtioDevice[] = [];
  try {
    const { openDiskDevice } = config.disks.length > 0 ? await import('@hype/virtio-blk/node') : { openDiskDevice: undefined };
    for (const [index, disk] of config.disks.entries()) {
      devices.push(
        await openDiskDevice!(disk, index).catch((error: unknown) => {
          throw new UsageError((error as Error).message, { cause: error });
        }),
      );
    }
  } catch (error) {
    for (const device of devices) await device.close?.();
    throw error;
  }
  if (config.rng) devices.push(new EntropyDevice());
  try {
    for (const nic of config.nics) devices.push(await openNic(nic, logger));
  } catch (error) {
    for (const device of devices) await device.close?.();
    throw error;
  }
  if (config.agent || config.vsockSocket !== undefined) devices.push(new (await import('@hype/virtio-vsock')).VsockDevice());
  return devices;
}

/**
 * One network interface: passt for `user` (its failure to start is the user's to fix: passt missing, a
 * published port taken, no host interface), the TAP device for `tap=NAME` (a missing privilege, likewise).
 */
async function openNic(nic: CliNic, logger: VmLogger): Promise<VirtioNetDevice> {
  const [{ VirtioNetDevice }, { openTapBackend, PasstPortError, startPasst }] = await Promise.all([import('@hype/virtio-net'), import('@hype/virtio-net/node')]);
  const deviceOver = async (backend: NetBackend, mac: { mac?: string }): Promise<VirtioNetDevice> => {
    // The backend is closed again if the device refuses its options.
    try {
      return new VirtioNetDevice({ backend, ...mac });
    } catch (error) {
      await backend.close();
      throw error;
    }
  };
  const mac = nic.mac !== undefined ? { mac: nic.mac } : {};
  if (nic.kind === 'user') {
    // passt's messages after start (one line each) are rate-limited: guest traffic can make it log.
    const log = rateLimitedLogger(logger);
    const backend = await startPasst({ publish: nic.publish, log: (line) => log.warn(line) }).catch((error: unknown) => {
      if (error instanceof PasstPortError) {
        throw new UsageError(`--publish ${formatForward(error.forward)}: ${error.message.replace(/^passt: /, '')}`, { cause: error });
      }
      throw new UsageError(`--net user: ${(error as Error).message}`, { cause: error });
    });
    return deviceOver(backend, mac);
  }
  const backend = await openTapBackend(nic.name).catch((error: unknown) => {
    throw new UsageError(`--net tap=${nic.name}: ${(error as Error).message}`, { cause: error });
  });
  // As root, a name that did not exist makes a new interface, down and without an address: frames the
  // guest sends are then dropped by the kernel (EIO) without a word.
  if (!interfaceIsUp(nic.name)) {
    logger.warn(`--net tap=${nic.name}: the interface is down, so the guest's frames go nowhere; on the host: ip link set ${nic.name} up (and give it an address)`);
  }
  return deviceOver(backend, mac);
}

/** IFF_UP in /sys/class/net/NAME/flags (true when that cannot be read: no claim either way). */
function interfaceIsUp(name: string): boolean {
  try {
    return (parseInt(readFileSync(`/sys/class/net/${name}/flags`, 'utf8'), 16) & 0x1) !== 0;
  } catch {
    return true;
  }
}

/** A forward as --publish spells it: [ADDR:]HOST:GUEST[/udp]. */
function formatForward(forward: PortForward): string {
  return `${forward.hostAddress !== undefined ? `${forward.hostAddress}:` : ''}${forward.hostPort}:${forward.guestPort}${forward.protocol === 'udp' ? '/udp' : ''}`;
}

/** Serves --vsock PATH for the VM's vsock device; a socket path in use is the user's to fix. */
async function startBridge(device: VsockDevice, path: string, logger: VmLogger): Promise<VsockUnixBridge> {
  const { VsockUnixBridge } = await import('@hype/virtio-vsock/node');
  // A guest can connect to unbound ports in a loop: one line each would flood stderr.
  const bridge = new VsockUnixBridge(device, path, { log: rateLimitedLogger(logger) });
  try {
    await bridge.start();
  } catch (error) {
    throw new UsageError(`--vsock ${(error as Error).message}`, { cause: error });
  }
  return bridge;
}

/** createVm from @hype/vm, driven as the CLI needs; its input errors become UsageErrors (exit 2). */
export const defaultCreateVm: CreateVm = async (config, options) => {
  const { disks: _disks, rng: _rng, nics: _nics, agent: _agent, vsockSocket, kernelImage, ...vmConfig } = config;
  const devices = await openDevices(config, options.logger);
  // openDevices puts the vsock device last, when there is one.
  const vsock = config.agent || vsockSocket !== undefined ? (devices.at(-1) as VsockDevice) : undefined;
  let machine;
  try {
    machine = await createVm(
      { ...vmConfig, devices, ...(config.agent && vsock ? { agent: () => vsock.connect(DEFAULT_AGENT_PORT) } : {}) },
      { ...options, ...(kernelImage ? { kernelImage } : {}) },
    );
  } catch (error) {
    if (error instanceof VmInputError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
  let bridge: VsockUnixBridge | undefined;
  if (vsock && vsockSocket !== undefined) {
    try {
      bridge = await startBridge(vsock, vsockSocket, options.logger);
    } catch (error) {
      await machine.close();
      throw error;
    }
  }
  const agent: CliAgent | undefined = config.agent
    ? {
        ready: async (timeoutMs) => {
          await machine.ready({ timeoutMs });
        },
        spawn: (argv, spawnOptions) => machine.spawn(argv, spawnOptions.timeoutMs !== undefined ? { timeoutMs: spawnOptions.timeoutMs } : {}),
        powerOff: async () => {
          await machine.exec(['/bin/sh', '-c', 'sync; poweroff -f'], { maxOutputBytes: 64 * 1024 });
        },
      }
    : undefined;
  return {
    run: async () => {
      try {
        return fromVmExit(await machine.run());
      } finally {
        await bridge?.close();
      }
    },
    writeConsole: (bytes) => machine.writeConsole(bytes),
    stop: () => machine.stop('stopped by the hype command'),
    ...(agent ? { agent } : {}),
  };
};

/** Opens the KVM device and checks its API version (the native addon loads here). */
export function probeKvm(path: string): string | undefined {
  return probeKvmDevice(path);
}
