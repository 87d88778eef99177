/**
 * hype's command line as a library: `runCli(argv, io)` runs a command with injected streams, VM factory,
 * guest builder and boot check; the pieces (argument parsing, config files, checks, exit codes, the
 * console escape filter) are exported for reuse and tests.
 */
export { parseArgs, VERSION, type ParsedArgs } from './args.js';
export { loadConfigFile, configFromJson, CONFIG_KEYS } from './config-file.js';
export {
  mergeOptions,
  parseDiskSpec,
  parseDiskValue,
  parseMem,
  parseCpus,
  MAX_MEM_MIB,
  MAX_SERIAL_LENGTH,
  type RunOptions,
  type OptionOrigins,
  type LabelledOptions,
} from './options.js';
export { checkInputs, bootProblem, type BootCheck, type CheckBoot, type InputCheck } from './validate.js';
export { loaderCheckBoot } from './boot-check.js';
export { checkKvmDevice, kvmDevicePath, DEFAULT_KVM_DEVICE } from './kvm-device.js';
export { EscapeFilter, ESCAPE_BYTE, ESCAPE_HELP, type EscapeAction, type EscapeResult } from './escape.js';
export { ConsoleBridge, type ConsoleInput, type ConsoleBridgeOptions } from './console-bridge.js';
export {
  CommandExitCode,
  COMMAND_EXIT_CODE_HELP,
  ExitCode,
  EXIT_CODE_HELP,
  SIGNAL_EXIT_CODES,
  decideExit,
  type ExitDecision,
  type StopCause,
  type StopSignal,
  type VmOutcome,
} from './exit-codes.js';
export { runCli, isInputError, type CliIo, type OutputStream } from './run-cli.js';
export type { CliAgent, CliVm, CreateVm, CreateVmOptions, DefaultGuest, DefaultGuestFiles, GuestCommand } from './ports.js';
export { runGuestCommand, ConsoleTail, statusExitCode, commandFailure, AGENT_READY_TIMEOUT_MS } from './run-command.js';
export { packagedDefaultGuest } from './default-guest.js';
export { defaultCreateVm, fromVmExit } from './vm-adapter.js';
export { parseSizeBytes, formatSize } from './size.js';
export { UsageError, isUsageError } from './usage-error.js';
export { nodeFs, type HostFs, type FileStat } from './host-fs.js';
export { installProcessHooks, type ProcessHooks } from './process-hooks.js';
export { stderrLogger, logLevelFromEnv, LOG_LEVELS, type LogLevel } from './vm-logger.js';
