import { existsSync } from 'node:fs';

/** `auto`: on when the host's /dev/kvm comes from kvm_pvm; `pvm`: forced on; `off`: forced off. */
export type HostQuirkMode = 'auto' | 'pvm' | 'off';

/** Environment variable that overrides auto-detection (`auto`, `pvm` or `off`). */
export const HOST_QUIRKS_ENV = 'HYPE_HOST_QUIRKS';

/** Present when the host's KVM is the PVM (Pagetable-based Virtual Machine) module. */
export const KVM_PVM_MODULE_PATH = '/sys/module/kvm_pvm';

export interface HostQuirkDetection {
  active: boolean;
  /** Why, in words, for the log. */
  reason: string;
}

export interface DetectOptions {
  /** An explicit choice (e.g. from a CLI flag) beats the environment. */
  mode?: HostQuirkMode;
  env?: Readonly<Record<string, string | undefined>>;
  exists?: (path: string) => boolean;
}

function parseMode(value: string, source: string): HostQuirkMode {
  if (value === 'auto' || value === 'pvm' || value === 'off') return value;
  throw new Error(`${source}=${JSON.stringify(value)} is not a host-quirk mode: use auto, pvm or off`);
}

/** Decides whether the PVM host-quirk layer is active (README.md, host quirks). */
export function detectHostQuirks(opts: DetectOptions = {}): HostQuirkDetection {
  const env = opts.env ?? process.env;
  const fromEnv = env[HOST_QUIRKS_ENV];
  const mode = opts.mode ?? (fromEnv ? parseMode(fromEnv, HOST_QUIRKS_ENV) : 'auto');
  if (mode === 'pvm') return { active: true, reason: opts.mode ? 'forced on' : `forced on by ${HOST_QUIRKS_ENV}=pvm` };
  if (mode === 'off') return { active: false, reason: opts.mode ? 'forced off' : `forced off by ${HOST_QUIRKS_ENV}=off` };
  const exists = opts.exists ?? existsSync;
  return exists(KVM_PVM_MODULE_PATH)
    ? { active: true, reason: `${KVM_PVM_MODULE_PATH} exists (KVM is provided by kvm_pvm)` }
    : { active: false, reason: `${KVM_PVM_MODULE_PATH} absent (ordinary KVM)` };
}
