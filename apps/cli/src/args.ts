import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_MEM_MIB, MAX_CPUS } from '@hype/vm';
import packageJson from '../package.json' with { type: 'json' };
import { parseAccel, type Accel } from './accel.js';
import { EXIT_CODE_HELP } from './exit-codes.js';
import {
  parseCmdline,
  parseConsole,
  parseCpus,
  parseDiskSpec,
  parseMem,
  parsePath,
  parseRng,
  type LabelledOptions,
} from './options.js';
import { UsageError } from './usage-error.js';

export const VERSION: string = packageJson.version;

export type ParsedArgs =
  | { command: 'run'; flags: LabelledOptions; configFile?: string; timings?: boolean; accel: Accel }
  | { command: 'guest-build' }
  /** --help or --version: print `text` on stdout and exit 0. */
  | { command: 'print'; text: string };

const RUN_HELP_AFTER = `
Disks (--disk, repeatable; the first is /dev/vda, the next /dev/vdb, ...):
  PATH[,ro][,serial=ID]   a raw image file, read-write unless ,ro
  mem:SIZE[,serial=ID]    an empty disk in host memory, e.g. mem:64M
  https://URL[,serial=ID] a read-only image fetched with HTTP range requests

Sizes: a bare number is MiB; suffixes K, M, G, T are binary (1G = 1024M).

With no --kernel, hype boots its default guest (a small Linux with a busybox
shell), building it first if it is not cached (several minutes, once).

--config FILE reads the same options from JSON, e.g.
  {"kernel": "bzImage", "mem": "1G", "cpus": 2, "disks": ["root.img", "mem:64M"]}
Relative paths in it are relative to the file; flags given on the command line
override its values (--disk replaces its whole disk list).

Console: the terminal is the guest console (raw mode when stdin is a terminal,
so Ctrl-C goes to the guest). Ctrl-A x quits hype, Ctrl-A Ctrl-A sends a
literal Ctrl-A, Ctrl-A h shows this. SIGINT/SIGTERM stop the VM.

Acceleration (--accel): on a host without a usable /dev/kvm, auto runs the same
command inside the nested rig (QEMU/TCG emulating a CPU with SVM, a Debian
kernel with kvm_amd; needs qemu-system-x86): everything works the same, slowly.
Disk files are shared with it read-write, so their writes land here.

Environment: HYPE_CACHE_DIR (default guest cache, default $XDG_CACHE_HOME/hype
or ~/.cache/hype), HYPE_LINUX_SOURCE (the kernel source tarball for the default
guest), HYPE_KVM_DEVICE (the KVM device, default /dev/kvm), HYPE_LOG (VM
messages on stderr: debug, info, warn (default), error, silent).

${EXIT_CODE_HELP}
`;

interface RawRunFlags {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  mem?: string;
  cpus?: string;
  disk?: string[];
  console?: string;
  rng?: string;
  config?: string;
  timings?: boolean;
  accel?: string;
}

function buildProgram(onRun: (flags: RawRunFlags) => void, onGuestBuild: () => void, output: (s: string) => void): Command {
  const program = new Command('hype')
    .description('hype: boot Linux guests on KVM, with a virtio console and virtio block disks')
    .version(VERSION, '-V, --version', 'print the hype version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput({ writeOut: output, writeErr: output, outputError: () => {} })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `\nRun 'hype run --help' for the VM options and disk syntax. In the console, Ctrl-A x quits.\n\n${EXIT_CODE_HELP}\n`,
    );

  program
    .command('run')
    .description('boot a VM; the terminal is its console')
    .option('--kernel <path>', 'Linux kernel, bzImage or ELF vmlinux (default: the default guest)')
    .option('--initrd <path>', 'initramfs (default: the default guest\'s, when --kernel is not given)')
    .option('--cmdline <string>', 'extra kernel command line, appended to what hype sets itself')
    .option('--mem <size>', `guest RAM, e.g. 512, 512M, 1G (default: ${DEFAULT_MEM_MIB}M)`)
    .option('--cpus <n>', `number of vCPUs, 1-${MAX_CPUS} (default: 1)`)
    .addOption(
      new Option('--disk <spec>', 'attach a disk: PATH[,ro][,serial=ID], mem:SIZE or https://URL; repeatable')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .option('--console <kind>', 'guest console: hvc (virtio-console) or serial (8250 UART) (default: hvc)')
    .option('--rng <on|off>', 'a virtio-rng entropy device, the guest\'s /dev/hwrng (default: on)')
    .option('--config <file>', 'read options from a JSON file; flags override it')
    .option(
      '--accel <kind>',
      'auto: /dev/kvm if it answers, else nested; kvm: only /dev/kvm; nested: inside QEMU emulation (slow) (default: auto)',
    )
    .option('--timings', 'print boot-timing events on stderr as lines "hype-timing {json}" (used by pnpm bench)')
    .addHelpText('after', RUN_HELP_AFTER)
    .action((flags: RawRunFlags) => onRun(flags));

  const guest = program.command('guest').description('manage the default guest');
  guest
    .command('build')
    .description('build the default guest kernel and initrd (cached in $HYPE_CACHE_DIR, else $XDG_CACHE_HOME/hype or ~/.cache/hype)')
    .action(() => onGuestBuild());
  return program;
}

/** Turns commander's "error: unknown option '--x'\n(Did you mean --mem?)" into one line. */
function commanderMessage(error: CommanderError): string {
  return error.message
    .replace(/^error: /, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}

function flagsToOptions(flags: RawRunFlags): LabelledOptions {
  const result: LabelledOptions = { options: {}, origins: {} };
  const { options, origins } = result;
  if (flags.kernel !== undefined) {
    options.kernel = parsePath(flags.kernel, '--kernel', undefined);
    origins.kernel = '--kernel';
  }
  if (flags.initrd !== undefined) {
    options.initrd = parsePath(flags.initrd, '--initrd', undefined);
    origins.initrd = '--initrd';
  }
  if (flags.cmdline !== undefined) {
    options.cmdline = parseCmdline(flags.cmdline, '--cmdline');
    origins.cmdline = '--cmdline';
  }
  if (flags.mem !== undefined) {
    options.memMiB = parseMem(flags.mem, '--mem');
    origins.memMiB = '--mem';
  }
  if (flags.cpus !== undefined) {
    options.cpus = parseCpus(flags.cpus, '--cpus');
    origins.cpus = '--cpus';
  }
  if (flags.disk !== undefined) {
    options.disks = flags.disk.map((spec) => parseDiskSpec(spec, '--disk', undefined));
    origins.disks = flags.disk.map(() => '--disk');
  }
  if (flags.console !== undefined) {
    options.console = parseConsole(flags.console, '--console');
    origins.console = '--console';
  }
  if (flags.rng !== undefined) {
    options.rng = parseRng(flags.rng, '--rng');
    origins.rng = '--rng';
  }
  return result;
}

/**
 * Parses the command line (without `node` and the script: `process.argv.slice(2)`). Pure: reads no
 * files. Returns what to do, or a UsageError naming the bad flag.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs | UsageError {
  let parsed: ParsedArgs | undefined;
  let printed = '';
  const program = buildProgram(
    (flags) => {
      if (flags.config !== undefined && flags.config.trim() === '') throw new UsageError('--config: must be a file path');
      parsed = {
        command: 'run',
        flags: flagsToOptions(flags),
        ...(flags.config !== undefined ? { configFile: flags.config } : {}),
        ...(flags.timings ? { timings: true } : {}),
        accel: flags.accel === undefined ? 'auto' : parseAccel(flags.accel, '--accel'),
      };
    },
    () => {
      parsed = { command: 'guest-build' };
    },
    (text) => {
      printed += text;
    },
  );
  if (argv.length === 0) {
    return new UsageError("no command given: use 'hype run' to boot the default guest, or see 'hype --help'");
  }
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof UsageError) return error;
    if (!(error instanceof CommanderError)) throw error;
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') {
      return { command: 'print', text: printed };
    }
    if (error.code === 'commander.help' && error.exitCode === 0) return { command: 'print', text: printed };
    if (error.code === 'commander.help') {
      // A command with subcommands run without one (`hype guest`): commander printed its help.
      return new UsageError("'hype guest' needs a subcommand: hype guest build (see 'hype guest --help')");
    }
    const helpCommand = argv[0] === 'run' ? 'hype run --help' : argv[0] === 'guest' ? 'hype guest --help' : 'hype --help';
    return new UsageError(`${commanderMessage(error)} (see '${helpCommand}')`);
  }
  if (!parsed) return new UsageError("no command given: use 'hype run' to boot the default guest, or see 'hype --help'");
  return parsed;
}
