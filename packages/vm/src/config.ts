/** A disk attached to the VM, in order: the first is /dev/vda, the second /dev/vdb, ... */
export type DiskConfig =
  | { kind: 'file'; path: string; readOnly?: boolean; serial?: string }
  | { kind: 'memory'; sizeBytes: number; serial?: string }
  | { kind: 'http'; url: string; serial?: string };

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
  disks: DiskConfig[];
  /** Which device carries the guest console: virtio-console (hvc0) or the 8250 UART (ttyS0). */
  console: ConsoleKind;
}

export const DEFAULT_MEM_MIB = 256;
export const MAX_CPUS = 8;
