/** The process exit codes of `hype`, documented in `hype --help` and README.md. */
export const ExitCode = {
  /** The guest powered off with status 0 (or you quit with Ctrl-A x); a command succeeded. */
  ok: 0,
  /** The guest powered off with a non-zero status; or `hype guest build` failed. */
  guestFailure: 1,
  /** Bad flags, config file, kernel/initrd/disk file, too little memory, no usable /dev/kvm. */
  usage: 2,
  /** The guest rebooted (a kernel panic ends this way too: the VM boots Linux with panic=-1). */
  reboot: 3,
  /** The guest triple-faulted (x86 shutdown): its state was unrecoverable. */
  tripleFault: 4,
  /** hype failed: an instruction KVM could not emulate, a device or VMM error, a bug. */
  internal: 5,
  sighup: 129,
  sigint: 130,
  sigterm: 143,
} as const;

export type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

export const SIGNAL_EXIT_CODES: Record<StopSignal, number> = {
  SIGHUP: ExitCode.sighup,
  SIGINT: ExitCode.sigint,
  SIGTERM: ExitCode.sigterm,
};

/**
 * Why a VM stopped, as far as the CLI cares. @hype/vm's exit reasons are mapped onto this shape by
 * `fromVmExit` in vm-port.ts.
 */
export type VmOutcome =
  | { kind: 'poweroff'; status: number }
  | { kind: 'reboot' }
  | { kind: 'triple-fault' }
  /** Every vCPU halted with interrupts off: a power-off without ACPI (`poweroff -f` on such a kernel). */
  | { kind: 'halted' }
  /** `message` is one line; `detail` (instruction bytes, registers) may span several. */
  | { kind: 'internal-error'; message: string; detail?: string }
  /** stop() was called: by a signal, by Ctrl-A x, or by the CLI after an error. */
  | { kind: 'stopped' };

/** Why the CLI asked the VM to stop, if it did. */
export type StopCause = { kind: 'signal'; signal: StopSignal } | { kind: 'quit-key' };

export interface ExitDecision {
  code: number;
  /** One line for stderr, or undefined when the outcome needs no comment (a clean poweroff). */
  message?: string;
  /** More lines after the message (an internal error's register dump). */
  detail?: string;
}

/** Maps how the VM ended (and why we stopped it, if we did) to the process exit code and a message. */
export function decideExit(outcome: VmOutcome, stopCause?: StopCause): ExitDecision {
  switch (outcome.kind) {
    case 'poweroff':
      if (outcome.status === 0) return { code: ExitCode.ok };
      return { code: ExitCode.guestFailure, message: `guest powered off with status ${outcome.status}` };
    case 'reboot':
      return { code: ExitCode.reboot, message: 'guest rebooted (or panicked); hype does not restart it' };
    case 'triple-fault':
      return { code: ExitCode.tripleFault, message: 'guest triple fault (x86 shutdown): the guest crashed' };
    case 'halted':
      return { code: ExitCode.ok, message: 'guest halted with interrupts off (a power-off without ACPI)' };
    case 'internal-error':
      return {
        code: ExitCode.internal,
        message: `internal error: ${outcome.message}`,
        ...(outcome.detail !== undefined ? { detail: outcome.detail } : {}),
      };
    case 'stopped':
      if (stopCause?.kind === 'signal') {
        return { code: SIGNAL_EXIT_CODES[stopCause.signal], message: `stopped by ${stopCause.signal}` };
      }
      if (stopCause?.kind === 'quit-key') return { code: ExitCode.ok, message: 'terminated by Ctrl-A x' };
      return { code: ExitCode.internal, message: 'internal error: the VM stopped without being asked to' };
  }
}

/**
 * `hype run -- CMD`: the command's own exit status passes through (a signal N as 128+N, as shells
 * report it), so hype's own outcomes use the codes timeout(1), env(1) and `docker run` use for theirs.
 */
export const CommandExitCode = {
  /** --timeout expired: the command (its whole process group) was killed. */
  timeout: 124,
  /** hype failed: bad flags or files, the VM did not start or ended early, the guest agent did not answer. */
  hypeFailure: 125,
  /** The command exists in the guest but could not be run (not executable, bad format). */
  cannotRun: 126,
  /** No such command in the guest. */
  notFound: 127,
} as const;

/** The exit code table of `hype run -- CMD`, printed in `hype run --help`. */
export const COMMAND_EXIT_CODE_HELP = `Exit codes with a command (hype run [options] -- CMD [ARGS...]):
  0-123 CMD's own exit status
  124  --timeout expired; CMD and its process group were killed
  125  hype failed: bad flags or files, the VM did not start or ended early,
       or the guest agent did not answer (the guest console's last lines are printed)
  126  CMD exists in the guest but could not be run
  127  CMD was not found in the guest
  128+N  CMD was killed by signal N (130: SIGINT, 143: SIGTERM); a signal sent
       to hype is passed to CMD's process group first`;

/** The exit code table as printed at the end of `hype run --help`. */
export const EXIT_CODE_HELP = `Exit codes:
  0    the guest powered off with status 0 (or halted for good: every vCPU
       stopped with interrupts off), or you quit with Ctrl-A x
  1    the guest powered off with a non-zero status (printed), or the guest build failed
  2    bad flags, config file, kernel/initrd/disk file, too little memory, or no usable /dev/kvm
  3    the guest rebooted (a kernel panic too: hype boots Linux with panic=-1)
  4    the guest triple-faulted
  5    internal error (e.g. an instruction KVM could not emulate; registers are printed)
  129/130/143  stopped by SIGHUP/SIGINT/SIGTERM`;
