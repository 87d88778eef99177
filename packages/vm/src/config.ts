import type { AgentConnector } from '@hype/guest-agent';
import type { VirtioDevice } from '@hype/virtio';

export type ConsoleKind = 'hvc' | 'serial';

/** Everything needed to build and run one VM. Paths are host paths. */
export interface VmConfig {
  /** bzImage or ELF vmlinux. */
  kernel: string;
  /** Uncompressed (newc) or compressed initramfs; optional. */
  initrd?: string;
  /** Extra kernel command line, appended after what the VM itself adds. */
  cmdline?: string;
  /** Guest RAM in MiB. */
  memMiB: number;
  /** Number of vCPUs (1-8). */
  cpus: number;
  /**
   * Which device carries the guest console: virtio-console (hvc0, which the VM adds in the first
   * virtio slot) or the 8250 UART (ttyS0, always present).
   */
  console: ConsoleKind;
  /**
   * virtio devices, each in its own virtio-mmio slot after the console's, in order: any object
   * implementing @hype/virtio's `VirtioDevice` (e.g. `VirtioBlkDevice` from @hype/virtio-blk,
   * `EntropyDevice` from @hype/virtio-rng, or your own). Disks are named vda, vdb, ... in the order they
   * appear here. The VM owns them from createVm on: it resets them and awaits their `close()` when it is
   * released.
   */
  devices?: readonly VirtioDevice[];
  /**
   * How to reach the guest agent (hype-agent, which hype's default guest starts on vsock port 1024):
   * a function opening a new connection to it, usually `() => vsock.connect(DEFAULT_AGENT_PORT)` for a
   * `VsockDevice` of @hype/virtio-vsock listed in `devices`. With it, the VM's `ready()`, `exec()`,
   * `spawn()`, `writeFile()` and `readFile()` work.
   */
  agent?: AgentConnector;
}

export const DEFAULT_MEM_MIB = 256;
export const MAX_CPUS = 8;
