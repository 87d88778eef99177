import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/args.js';
import { UsageError } from '../src/usage-error.js';
import packageJson from '../package.json' with { type: 'json' };

function usageMessage(argv: string[]): string {
  const result = parseArgs(argv);
  if (!(result instanceof UsageError)) throw new Error(`expected a UsageError for ${argv.join(' ')}, got ${JSON.stringify(result)}`);
  return result.message;
}

function runFlags(argv: string[]) {
  const result = parseArgs(['run', ...argv]);
  if (result instanceof UsageError) throw result;
  if (result.command !== 'run') throw new Error(`expected run, got ${result.command}`);
  return result;
}

describe('parseArgs: commands', () => {
  it('run with no flags leaves everything to defaults (the default guest)', () => {
    expect(runFlags([])).toEqual({ command: 'run', flags: { options: {}, origins: {} }, accel: 'auto' });
  });

  it('--timings asks for boot-timing lines and is no VM option', () => {
    expect(runFlags(['--timings'])).toEqual({ command: 'run', flags: { options: {}, origins: {} }, timings: true, accel: 'auto' });
  });

  it('guest build', () => {
    expect(parseArgs(['guest', 'build'])).toEqual({ command: 'guest-build' });
  });

  it('--version prints the package version', () => {
    expect(parseArgs(['--version'])).toEqual({ command: 'print', text: `${packageJson.version}\n` });
    expect(parseArgs(['-V'])).toEqual({ command: 'print', text: `${packageJson.version}\n` });
  });

  it('--help lists the commands, the quit key and the exit codes', () => {
    const result = parseArgs(['--help']);
    expect(result).toMatchObject({ command: 'print' });
    const text = (result as { text: string }).text;
    expect(text).toContain('Usage: hype [options] [command]');
    expect(text).toMatch(/run \[options\] \[command\.\.\.\]\s+boot a VM/);
    expect(text).toContain('guest');
    expect(text).toContain('Ctrl-A x quits');
    expect(text).toContain('Exit codes:');
  });

  it('run -- CMD ARGS: the command with its own flags untouched, --timeout in ms, --vsock', () => {
    expect(parseArgs(['run', '--mem', '512', '--timeout', '2.5', '--vsock', '/tmp/v.sock', '--', 'sh', '-c', 'exit 7', '--mem', '--'])).toMatchObject({
      command: 'run',
      flags: { options: { memMiB: 512 } },
      guestCommand: { argv: ['sh', '-c', 'exit 7', '--mem', '--'], timeoutMs: 2500 },
      vsock: '/tmp/v.sock',
    });
    expect(parseArgs(['run', '--', 'true'])).toMatchObject({ guestCommand: { argv: ['true'] } });
    expect(parseArgs(['run', '--vsock', 'v.sock'])).not.toHaveProperty('guestCommand');
    expect(parseArgs(['run'])).not.toHaveProperty('guestCommand');
  });

  it('run --help documents every option, the disk syntax, the escape keys and the exit codes', () => {
    const text = (parseArgs(['run', '--help']) as { text: string }).text;
    for (const flag of ['--kernel', '--initrd', '--cmdline', '--mem', '--cpus', '--disk', '--console', '--config', '--timeout', '--vsock']) {
      expect(text).toContain(flag);
    }
    expect(text).toContain('mem:SIZE');
    expect(text).toContain('Ctrl-A x quits hype, Ctrl-A Ctrl-A sends a\nliteral Ctrl-A');
    expect(text).toMatch(/^ {2}0 {4}the guest powered off with status 0/m);
    expect(text).toMatch(/^ {2}2 {4}bad flags/m);
    expect(text).toMatch(/^ {2}3 {4}the guest rebooted/m);
    expect(text).toMatch(/^ {2}129\/130\/143 {2}stopped by SIGHUP\/SIGINT\/SIGTERM/m);
  });

  it('help run is the same as run --help', () => {
    expect(parseArgs(['help', 'run'])).toEqual(parseArgs(['run', '--help']));
  });

  it('guest --help and guest build --help print help', () => {
    expect((parseArgs(['guest', '--help']) as { text: string }).text).toContain('build');
    expect((parseArgs(['guest', 'build', '--help']) as { text: string }).text).toContain('hype guest build');
  });
});

describe('parseArgs: run flags', () => {
  it('parses every flag into options with their origins', () => {
    const result = runFlags([
      '--kernel', 'bzImage', '--initrd', 'initrd.cpio', '--cmdline', 'quiet loglevel=3', '--mem', '1G',
      '--cpus', '4', '--disk', 'root.img', '--disk', 'data.img,ro,serial=data1', '--disk', 'mem:64M',
      '--disk', 'https://example.com/a,b.img?x=1,ro', '--console', 'serial', '--config', 'vm.json', '--accel', 'nested',
    ]);
    expect(result).toEqual({
      command: 'run',
      configFile: 'vm.json',
      accel: 'nested',
      flags: {
        options: {
          kernel: 'bzImage',
          initrd: 'initrd.cpio',
          cmdline: 'quiet loglevel=3',
          memMiB: 1024,
          cpus: 4,
          disks: [
            { kind: 'file', path: 'root.img' },
            { kind: 'file', path: 'data.img', readOnly: true, serial: 'data1' },
            { kind: 'memory', sizeBytes: 64 * 1024 * 1024 },
            { kind: 'http', url: 'https://example.com/a,b.img?x=1' },
          ],
          console: 'serial',
        },
        origins: {
          kernel: '--kernel', initrd: '--initrd', cmdline: '--cmdline', memMiB: '--mem', cpus: '--cpus',
          disks: ['--disk', '--disk', '--disk', '--disk'], console: '--console',
        },
      },
    });
  });

  it.each([
    ['512', 512],
    ['512M', 512],
    ['512m', 512],
    ['512MiB', 512],
    ['1G', 1024],
    ['1.5G', 1536],
    ['2048K', 2],
  ])('--mem %s is %i MiB', (text, mib) => {
    expect(runFlags(['--mem', text]).flags.options.memMiB).toBe(mib);
  });

  it('--flag=value works too', () => {
    expect(runFlags(['--mem=2G', '--cpus=2']).flags.options).toEqual({ memMiB: 2048, cpus: 2 });
  });

  it('--disk order is kept (vda, vdb, ...)', () => {
    const disks = runFlags(['--disk', 'b.img', '--disk', 'a.img']).flags.options.disks;
    expect(disks?.map((d) => (d.kind === 'file' ? d.path : d.kind))).toEqual(['b.img', 'a.img']);
  });

  it('a bare number in mem:SIZE is MiB, like --mem', () => {
    expect(runFlags(['--disk', 'mem:1000']).flags.options.disks).toEqual([{ kind: 'memory', sizeBytes: 1000 * 1024 * 1024 }]);
  });

  it('cpus 1 and 8 are the limits', () => {
    expect(runFlags(['--cpus', '1']).flags.options.cpus).toBe(1);
    expect(runFlags(['--cpus', '8']).flags.options.cpus).toBe(8);
  });
});

describe('parseArgs: bad input messages', () => {
  it.each([
    [[], "no command given: use 'hype run' to boot the default guest, or see 'hype --help'"],
    [['boot'], "unknown command 'boot' (see 'hype --help')"],
    [['guest'], "'hype guest' needs a subcommand: hype guest build (see 'hype guest --help')"],
    [['guest', 'build', 'now'], "too many arguments for 'build'. Expected 0 arguments but got 1. (see 'hype guest --help')"],
    [['run', '--'], 'nothing after --: give the command to run in the guest, e.g. hype run -- uname -a'],
    [['run', '--timeout', '5'], '--timeout: only with a command (hype run --timeout 60 -- CMD ...)'],
    [['run', '--timeout', '0', '--', 'true'], '--timeout "0": give seconds, a number above 0 and at most 86400 (e.g. --timeout 30 or 0.5)'],
    [['run', '--timeout', 'x', '--', 'true'], '--timeout "x": give seconds, a number above 0 and at most 86400 (e.g. --timeout 30 or 0.5)'],
    [['run', '--timeout', '1e9', '--', 'true'], '--timeout "1e9": give seconds, a number above 0 and at most 86400 (e.g. --timeout 30 or 0.5)'],
    [['run', '--vsock', ' '], '--vsock: must be a path for a new Unix socket'],
    [['run', '--', ''], 'the command after -- is an empty string'],
    [['run', 'bzImage'], "unexpected argument 'bzImage': options are --name VALUE (e.g. --kernel bzImage), and a command for the guest goes after --: hype run -- bzImage"],
    [['run', '--frobnicate'], "unknown option '--frobnicate' (see 'hype run --help')"],
    [['run', '--dsik', 'a.img'], "unknown option '--dsik' (Did you mean --disk?) (see 'hype run --help')"],
    [['run', '--mem'], "option '--mem <size>' argument missing (see 'hype run --help')"],
    [['run', '--kernel', ''], '--kernel "": must be a file path'],
    [['run', '--config', ''], '--config: must be a file path'],
    [['run', '--mem', 'lots'], '--mem lots: not a size; give MiB or use a unit suffix, e.g. 512, 512M, 1G'],
    [['run', '--mem', '512X'], '--mem 512X: not a size; give MiB or use a unit suffix, e.g. 512, 512M, 1G'],
    [['run', '--mem', '0'], '--mem 0: guest memory must be more than 0; e.g. 256M'],
    [['run', '--mem', '1000K'], '--mem 1000K: guest memory must be a whole number of MiB, e.g. 256M'],
    [['run', '--mem', '2T'], '--mem 2T: more than the 1T hype supports'],
    [['run', '--cpus', '0'], '--cpus 0: the number of vCPUs must be a whole number from 1 to 8'],
    [['run', '--cpus', '9'], '--cpus 9: the number of vCPUs must be a whole number from 1 to 8'],
    [['run', '--cpus', '2.5'], '--cpus 2.5: the number of vCPUs must be a whole number from 1 to 8'],
    [['run', '--cpus', 'two'], '--cpus two: the number of vCPUs must be a whole number from 1 to 8'],
    [['run', '--console', 'vga'], '--console vga: the console must be "hvc" (virtio-console, hvc0) or "serial" (8250 UART, ttyS0)'],
    [['run', '--disk', 'a.img,readonly'], '--disk a.img,readonly: unknown disk option "readonly"; options are ro and serial=ID'],
    [['run', '--disk', ',ro'], '--disk ,ro: missing the disk file; use PATH[,ro][,serial=ID], mem:SIZE or a URL'],
    [['run', '--disk', 'mem:lots'], '--disk mem:lots: "lots" is not a size; use e.g. mem:64M or mem:1G'],
    [['run', '--disk', 'mem:100B'], '--disk mem:100B: a memory disk must be a positive multiple of 512 bytes, e.g. mem:64M'],
    [['run', '--disk', 'mem:64M,ro'], '--disk mem:64M,ro: a memory disk cannot be read-only (it starts empty)'],
    [['run', '--disk', 'a.img,serial=abcdefghijklmnopqrstu'], '--disk a.img,serial=abcdefghijklmnopqrstu: serial is 21 characters; virtio-blk allows at most 20'],
    [['run', '--disk', 'a.img,serial='], '--disk a.img,serial=: serial must be a non-empty string'],
    [['run', '--disk', 'a.img,serial=x,serial=y'], '--disk a.img,serial=x,serial=y: serial= given twice'],
    [['run', '--disk', 'https://'], '--disk https://: "https://" is not a valid URL'],
  ])('%j -> %s', (argv, message) => {
    expect(usageMessage(argv)).toBe(message);
  });
});
