import * as hypeVm from '@hype/vm';
import type { VmConfig } from '@hype/vm';
import type { VmOutcome } from './exit-codes.js';
import type { CliVm, CreateVm, CreateVmOptions } from './ports.js';

/** How a @hype/vm VM ends (packages/vm/src/lifecycle.ts `VmExit`), as far as the CLI reads it. */
export type VmExitLike =
  | { kind: 'poweroff'; status: number }
  | { kind: 'reboot'; source?: string }
  | { kind: 'shutdown'; vcpu: number }
  | { kind: 'internal-error'; vcpu: number; report: unknown }
  | { kind: 'stopped'; reason?: string };

/** What the CLI needs from a @hype/vm VM. */
interface HypeVmLike {
  run(): Promise<VmExitLike>;
  writeConsole(bytes: Uint8Array): void;
  stop(reason?: string): void;
}

type CreateHypeVm = (config: VmConfig, options: CreateVmOptions) => Promise<HypeVmLike> | HypeVmLike;
type DescribeExit = (exit: VmExitLike) => string;
type FormatInternalError = (vcpu: number, report: unknown) => string;

function vmExport<T>(name: string): T | undefined {
  const value = (hypeVm as Record<string, unknown>)[name];
  return typeof value === 'function' ? (value as T) : undefined;
}

/** Maps @hype/vm's exit reason to the CLI's outcome (and so to an exit code, see exit-codes.ts). */
export function fromVmExit(
  exit: VmExitLike,
  describe: DescribeExit | undefined = vmExport<DescribeExit>('describeExit'),
  formatInternal: FormatInternalError | undefined = vmExport<FormatInternalError>('formatInternalError'),
): VmOutcome {
  switch (exit.kind) {
    case 'poweroff':
      return { kind: 'poweroff', status: exit.status };
    case 'reboot':
      return { kind: 'reboot' };
    case 'shutdown':
      return { kind: 'triple-fault' };
    case 'internal-error': {
      const message = describe ? describe(exit) : `vCPU ${exit.vcpu}: KVM internal error`;
      const detail = formatInternal?.(exit.vcpu, exit.report);
      return { kind: 'internal-error', message, ...(detail !== undefined ? { detail } : {}) };
    }
    case 'stopped':
      return { kind: 'stopped' };
  }
}

/** createVm from @hype/vm, driven as the CLI needs. */
export const defaultCreateVm: CreateVm = async (config, options): Promise<CliVm> => {
  const createVm = vmExport<CreateHypeVm>('createVm');
  if (!createVm) throw new Error('this build of @hype/vm has no createVm(): it cannot boot a VM yet');
  const vm = await createVm(config, options);
  return {
    run: async () => fromVmExit(await vm.run()),
    writeConsole: (bytes) => vm.writeConsole(bytes),
    stop: () => vm.stop('stopped by the hype command'),
  };
};
