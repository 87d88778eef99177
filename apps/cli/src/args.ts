import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_MEM_MIB, MAX_CPUS } from '@hype/vm';
import packageJson from '../package.json' with { type: 'json' };
import { parseAccel, type Accel } from './accel.js';
import { COMMAND_EXIT_CODE_HELP, EXIT_CODE_HELP } from './exit-codes.js';
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
import { parseMac, parseNetSpec, parsePublish } from './net-options.js';
import { UsageError } from './usage-error.js';

export const VERSION: string = packageJson.version;

export type ParsedArgs =
  | {
      command: 'run';
      flags: LabelledOptions;
      configFile?: string;
      timings?: boolean;
      accel: Accel;
      /** `hype run [options] -- CMD [ARGS...]`: the command to run in the guest through its agent. */
      guestCommand?: GuestCommandSpec;
      /** --vsock PATH: serve the VM's vsock on this Unix socket (Firecracker's protocol). */
      vsock?: string;
    }
  | { command: 'guest-build' }
  /** --help or --version: print `text` on stdout and exit 0. */
  | { command: 'print'; text: string };

export interface GuestCommandSpec {
  argv: string[];
  /** --timeout: kill the command after this many ms. */
  timeoutMs?: number;
}

/** The longest --timeout: a day (setTimeout's limit is about 24.8 days; a day is plenty for a command). */
export const MAX_TIMEOUT_SECONDS = 86_400;

const RUN_HELP_AFTER = `
Commands: hype run [options] -- CMD [ARGS...] boots the VM, runs CMD in the
guest through its agent (hype-agent, in the default guest) with this
terminal's stdin, stdout and stderr, powers the guest off and exits with CMD's
status. The guest console is not shown (its last lines are, if the VM fails).
--timeout SECONDS kills CMD after that long. With --vsock PATH, programs on
this host reach the guest's vsock ports through the Unix socket PATH:
connect, write "CONNECT <port>\n", read "OK <port>\n" (Firecracker's protocol);
guest connections to host port P go to PATH_P.

Disks (--disk, repeatable; the first is /dev/vda, the next /dev/vdb, ...):
  PATH[,ro][,serial=ID]   a raw image file, read-write unless ,ro
  mem:SIZE[,serial=ID]    an empty disk in host memory, e.g. mem:64M
  https://URL[,serial=ID] a read-only image fetched with HTTP range requests

Network (--net, repeatable; eth0, eth1, ... in the guest, configured by DHCP):
  user          rootless user-mode networking through passt (apt-get install
                passt): DHCP gives 10.0.2.15/24, outbound TCP/UDP and DNS work
                as on the host, and 10.0.2.2 is the host's loopback (a server
                on the host's 127.0.0.1:8000 is http://10.0.2.2:8000 in the
                guest). --publish 8080:80 makes the guest's port 80 the host's
                port 8080 (HOST:GUEST, [ADDR:]HOST:GUEST, PORT, /udp).
  tap=NAME      the TAP device NAME (needs CAP_NET_ADMIN, or create it first:
                ip tuntap add dev NAME mode tap user $USER); no DHCP server
                unless the host runs one (hype.dhcp=off in --cmdline skips it)
  none          no network (the default)
  ,mac=MAC      after user or tap=NAME: that interface's MAC (--mac: the first's)

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

${COMMAND_EXIT_CODE_HELP}
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
  timeout?: string;
  vsock?: string;
  net?: string[];
  mac?: string;
  publish?: string[];
}

function buildProgram(onRun: (flags: RawRunFlags, operands: string[]) => void, onGuestBuild: () => void, output: (s: string) => void): Command {
  const program = new Command('hype')
    .description('hype: boot Linux guests on KVM, with a virtio console and virtio block disks')
    .version(VERSION, '-V, --version', 'print the hype version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput({ writeOut: output, writeErr: output, outputError: () => {} })
    .showSuggestionAfterError(true)
    .enablePositionalOptions()
    .addHelpText(
      'after',
      `\nRun 'hype run --help' for the VM options and disk syntax. In the console, Ctrl-A x quits.\n\n${EXIT_CODE_HELP}\n`,
    );

  program
    .command('run')
    .description('boot a VM; the terminal is its console, or run a command in it: hype run [options] -- CMD [ARGS...]')
    .argument('[command...]', 'a command to run in the guest (after --)')
    .passThroughOptions()
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
    .addOption(
      new Option('--net <kind>', 'a network interface: user (rootless, through passt), tap=NAME[,mac=MAC], none; repeatable (default: none)')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .option('--mac <mac>', 'the first network interface\'s MAC address (default: random 52:54:00:xx:xx:xx)')
    .addOption(
      new Option('--publish <ports>', 'with --net user: forward a host port to the guest, [ADDR:]HOST:GUEST[/udp], e.g. 8080:80; repeatable')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .option('--config <file>', 'read options from a JSON file; flags override it')
    .option(
      '--accel <kind>',
      'auto: /dev/kvm if it answers, else nested; kvm: only /dev/kvm; nested: inside QEMU emulation (slow) (default: auto)',
    )
    .option('--timeout <seconds>', 'with a command: kill it after this many seconds (exit 124)')
    .option('--vsock <path>', 'serve the guest\'s vsock ports on this Unix socket (Firecracker\'s CONNECT protocol)')
    .option('--timings', 'print boot-timing events on stderr as lines "hype-timing {json}" (used by pnpm bench)')
    .addHelpText('after', RUN_HELP_AFTER)
    .action((operands: string[], flags: RawRunFlags) => onRun(flags, operands));

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
  if (flags.net !== undefined) {
    options.nets = flags.net.map((spec) => parseNetSpec(spec, '--net'));
    origins.nets = '--net';
  }
  if (flags.mac !== undefined) {
    options.mac = parseMac(flags.mac, '--mac');
    origins.mac = '--mac';
  }
  if (flags.publish !== undefined) {
    options.publish = flags.publish.map((spec) => parsePublish(spec, '--publish'));
    origins.publish = '--publish';
  }
  return result;
}

/** The command after `--` (and its --timeout), or undefined for an interactive console. */
function parseGuestCommand(argv: readonly string[], operands: string[], timeout: string | undefined): GuestCommandSpec | undefined {
  // Operands are exactly what follows the first `--` (commander would also take a stray word before it).
  const separator = argv.indexOf('--');
  if (operands.length > 0 && (separator < 0 || argv.length - separator - 1 !== operands.length)) {
    throw new UsageError(
      `unexpected argument '${operands[0]}': options are --name VALUE (e.g. --kernel ${operands[0]}), and a command for the guest goes after --: hype run -- ${operands.join(' ')}`,
    );
  }
  if (operands.length === 0) {
    if (separator >= 0) throw new UsageError("nothing after --: give the command to run in the guest, e.g. hype run -- uname -a");
    if (timeout !== undefined) throw new UsageError('--timeout: only with a command (hype run --timeout 60 -- CMD ...)');
    return undefined;
  }
  if (operands[0] === '') throw new UsageError('the command after -- is an empty string');
  if (timeout === undefined) return { argv: operands };
  const seconds = Number(timeout);
  if (timeout.trim() === '' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new UsageError(`--timeout ${JSON.stringify(timeout)}: give seconds, a number above 0 and at most ${MAX_TIMEOUT_SECONDS} (e.g. --timeout 30 or 0.5)`);
  }
  return { argv: operands, timeoutMs: Math.ceil(seconds * 1000) };
}

/**
 * Parses the command line (without `node` and the script: `process.argv.slice(2)`). Pure: reads no
 * files. Returns what to do, or a UsageError naming the bad flag.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs | UsageError {
  let parsed: ParsedArgs | undefined;
  let printed = '';
  const program = buildProgram(
    (flags, operands) => {
      if (flags.config !== undefined && flags.config.trim() === '') throw new UsageError('--config: must be a file path');
      const guestCommand = parseGuestCommand(argv, operands, flags.timeout);
      if (flags.vsock !== undefined && flags.vsock.trim() === '') throw new UsageError('--vsock: must be a path for a new Unix socket');
      parsed = {
        ...(guestCommand !== undefined ? { guestCommand } : {}),
        ...(flags.vsock !== undefined ? { vsock: flags.vsock } : {}),
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
