// Rootless user-mode networking: starts Debian's `passt` (https://passt.top/, what Podman and libvirt use)
// as a child process and hands it one end of a connected Unix socket (`passt --fd`), so no socket path is
// ever shared with other users and passt exits when the socket closes (`--fd` implies `--one-off`).

import type { ChildProcess, spawn as Spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket, createServer, isIPv4 } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PortForward, sameHostPort } from '../src/port-forward.js';
import { type StreamBackendOptions, StreamBackend } from './stream-backend.js';

/** The guest's address, its prefix and the gateway hype asks passt to hand out by DHCP (QEMU's user networking's). */
export const PASST_DEFAULT_ADDRESS = '10.0.2.15';
export const PASST_DEFAULT_PREFIX_LENGTH = 24;
/** The gateway: TCP and UDP to it reach the host's loopback (passt's gateway mapping). */
export const PASST_DEFAULT_GATEWAY = '10.0.2.2';
/**
 * The MAC passt answers with (`--mac-addr`; QEMU's user-mode gateway uses the same): set, not taken from
 * the host's interface, so the backend knows the source of every frame passt sends (for `StreamResync`).
 */
export const PASST_MAC = '52:55:0a:00:02:02';

export interface PasstOptions extends StreamBackendOptions {
  /** The passt executable. Default `passt` from PATH. */
  readonly command?: string;
  /** The guest's IPv4 address (by DHCP). Default 10.0.2.15. */
  readonly address?: string;
  /** Its prefix length, 8-30. Default 24. */
  readonly prefixLength?: number;
  /** The default gateway (by DHCP), through which the guest reaches the host's loopback. Default 10.0.2.2. */
  readonly gateway?: string;
  /** DNS servers handed out by DHCP. Default: the host's (passt reads /etc/resolv.conf). */
  readonly dns?: readonly string[];
  /** Ports forwarded from the host to the guest. Each host port must be free: checked before passt starts. */
  readonly publish?: readonly PortForward[];
  /** Milliseconds to wait for passt to finish its set-up. Default 10000. */
  readonly timeoutMs?: number;
  /** Where passt's messages go once it runs (it prints nothing unless something fails). */
  readonly log?: (line: string) => void;
}

/** A forwarded host port that cannot be used (taken, or privileged); `forward` says which. */
export class PasstPortError extends Error {
  constructor(
    message: string,
    readonly forward: PortForward,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PasstPortError';
  }
}

/** The stderr kept from passt for error messages. */
const STDERR_TAIL_BYTES = 4096;

/**
 * passt lines that say nothing to a user: syslog failures where no syslog daemon runs (it logs to stderr
 * too), and the note that an IPv4-only host has no IPv6 route (the guest's kernel has no IPv6 anyway).
 */
const PASST_NOISE = /^(Failed to send \d+ bytes to syslog|No external routable interface for IPv6)$/;

/**
 * A `StreamBackend` to a passt process hype started; `close()` ends the connection (passt exits with it)
 * and stops passt if it has not gone within a second.
 */
export class PasstBackend extends StreamBackend {
  constructor(
    socket: Socket,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    options: StreamBackendOptions,
    private readonly log?: (line: string) => void,
  ) {
    super(socket, options);
    // passt going away on its own takes the guest's link down (the socket closes); say why, once.
    child.once('exit', (code, signal) => {
      if (this.closing) return;
      this.log?.(
        `passt (pid ${child.pid}) exited (${signal ?? `status ${code}`}) while the VM ran: the guest's network is down until the VM is restarted`,
      );
    });
  }

  private closing = false;

  /** passt's process ID. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  override async close(): Promise<void> {
    this.closing = true;
    const { count, skippedBytes } = this.resyncs;
    if (count > 0) this.log?.(`passt: the stream lost its framing ${count} time(s) and was resynchronised (${skippedBytes} bytes skipped)`);
    await super.close();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    this.child.kill('SIGTERM');
    await this.exited;
    clearTimeout(timer);
  }
}

function checkOptions(options: PasstOptions): void {
  for (const [name, value] of [['address', options.address], ['gateway', options.gateway], ...(options.dns ?? []).map((d) => ['dns', d])]) {
    if (value !== undefined && !isIPv4(value as string)) throw new RangeError(`passt: ${name} ${String(value)} is not an IPv4 address`);
  }
  const prefix = options.prefixLength;
  if (prefix !== undefined && (!Number.isInteger(prefix) || prefix < 8 || prefix > 30)) {
    throw new RangeError(`passt: prefixLength ${prefix} must be a whole number from 8 to 30`);
  }
  const publish = options.publish ?? [];
  for (const [index, forward] of publish.entries()) {
    for (const port of [forward.hostPort, forward.guestPort]) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`passt: port ${port} must be from 1 to 65535`);
    }
    if (forward.protocol !== 'tcp' && forward.protocol !== 'udp') throw new RangeError(`passt: protocol must be tcp or udp`);
    if (forward.hostAddress !== undefined && !isIPv4(forward.hostAddress)) {
      throw new RangeError(`passt: host address ${forward.hostAddress} is not an IPv4 address`);
    }
    if (publish.slice(0, index).some((other) => sameHostPort(other, forward))) throw new RangeError(`passt: host ${forward.protocol} port ${forward.hostPort} is forwarded twice`);
  }
}

/** passt's `-t`/`-u` spec for the forwards of one protocol, or `none`. */
export function passtPortSpec(forwards: readonly PortForward[], protocol: 'tcp' | 'udp'): string {
  const specs = forwards
    .filter((f) => f.protocol === protocol)
    .map((f) => `${f.hostAddress !== undefined ? `${f.hostAddress}/` : ''}${f.hostPort}:${f.guestPort}`);
  return specs.length === 0 ? 'none' : specs.join(',');
}

/** The command line for passt serving one guest over an inherited socket (fd 3). */
export function passtArguments(options: PasstOptions, pidFile: string): string[] {
  const publish = options.publish ?? [];
  const args = ['--foreground', '--quiet', '--fd', '3', '--pid', pidFile, '--mac-addr', PASST_MAC];
  args.push('--address', options.address ?? PASST_DEFAULT_ADDRESS);
  args.push('--netmask', String(options.prefixLength ?? PASST_DEFAULT_PREFIX_LENGTH));
  args.push('--gateway', options.gateway ?? PASST_DEFAULT_GATEWAY);
  for (const server of options.dns ?? []) args.push('--dns', server);
  args.push('--tcp-ports', passtPortSpec(publish, 'tcp'), '--udp-ports', passtPortSpec(publish, 'udp'));
  return args;
}

/**
 * passt does not fail when a forwarded port is taken (it skips it), so each is tried here first; the
 * port is released again at once, before passt binds it.
 */
async function checkPortsFree(forwards: readonly PortForward[]): Promise<void> {
  const { createSocket } = await import('node:dgram');
  for (const forward of forwards) {
    const where = `${forward.protocol} port ${forward.hostPort}${forward.hostAddress !== undefined ? ` on ${forward.hostAddress}` : ''}`;
    const error = await new Promise<Error | undefined>((resolve) => {
      if (forward.protocol === 'tcp') {
        const server = createServer();
        server.once('error', resolve);
        server.listen({ port: forward.hostPort, host: forward.hostAddress ?? '0.0.0.0', exclusive: true }, () => server.close(() => resolve(undefined)));
      } else {
        const socket = createSocket('udp4');
        socket.once('error', resolve);
        socket.bind({ port: forward.hostPort, address: forward.hostAddress ?? '0.0.0.0', exclusive: true }, () => socket.close(() => resolve(undefined)));
      }
    });
    if (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new PasstPortError(
        code === 'EADDRINUSE'
          ? `passt: host ${where} is in use; choose another host port`
          : code === 'EACCES'
            ? `passt: host ${where} needs privileges (ports below 1024); choose a port from 1024 up`
            : `passt: cannot use host ${where}: ${error.message}`,
        forward,
        { cause: error },
      );
    }
  }
}

/**
 * Two connected Unix stream sockets from the addon: passt's end must be blocking. passt finishes a frame
 * its non-blocking send wrote only in part with a blocking write; on a non-blocking descriptor (any socket
 * Node creates or accepts) that write fails with EAGAIN, the rest of the frame is lost and the stream
 * loses its framing. Ours is handed to Node, which makes it non-blocking (a separate file description).
 */
async function socketPair(): Promise<[Socket, number]> {
  let kvmSys: typeof import('@hype/kvm-sys');
  try {
    kvmSys = await import('@hype/kvm-sys');
  } catch (error) {
    throw new Error('passt: the user-mode network needs @hype/kvm-sys (a native addon for Linux x86-64), an optional dependency that is not installed here', { cause: error });
  }
  const pair = kvmSys.addon().socketpair();
  if (typeof pair === 'number') throw new Error(`passt: socketpair failed: errno ${-pair}`);
  return [new Socket({ fd: pair[0], readable: true, writable: true }), pair[1]];
}

/** Who passt runs as: it drops root for `nobody`, and writes its pid file after that. */
function nobodyIds(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
    const fields = line?.split(':');
    if (fields && fields.length > 3) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  } catch {
    // no /etc/passwd: passt's default (65534) below
  }
  return { uid: 65534, gid: 65534 };
}

/**
 * Starts passt for one guest NIC and returns the backend connected to it, once passt has finished its
 * set-up (its pid file appears). Rejects with a one-line reason: passt not installed, a forwarded host
 * port taken, passt failing (with its last message, e.g. no usable host interface), or no start within
 * `timeoutMs`.
 */
export async function startPasst(options: PasstOptions = {}): Promise<PasstBackend> {
  checkOptions(options);
  await checkPortsFree(options.publish ?? []);
  const dir = mkdtempSync(join(tmpdir(), 'hype-passt-'));
  try {
    if (process.getuid?.() === 0) {
      const nobody = nobodyIds();
      if (nobody) chownSync(dir, nobody.uid, nobody.gid);
    }
    const [ours, theirs] = await socketPair();
    const pidFile = join(dir, 'passt.pid');
    const command = options.command ?? 'passt';
    let child: ChildProcess;
    try {
      // node:child_process only when passt starts (--net user), not in every VMM that imports this module.
      const { spawn } = createRequire(import.meta.url)('node:child_process') as { spawn: typeof Spawn };
      child = spawn(command, passtArguments(options, pidFile), { stdio: ['ignore', 'ignore', 'pipe', theirs] });
    } finally {
      closeSync(theirs); // passt has its own copy (fd 3)
    }
    let stderr = '';
    let started = false;
    let partial = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      const pieces = (partial + text).split('\n');
      partial = pieces.pop()!.slice(-STDERR_TAIL_BYTES); // a line still being written
      const lines = pieces.filter((l) => l.trim() !== '' && !PASST_NOISE.test(l.trim()) && !l.startsWith("Don't run as root"));
      if (started) for (const line of lines) options.log?.(`passt: ${line}`);
      else stderr = (stderr + lines.join('\n') + '\n').slice(-STDERR_TAIL_BYTES);
    });
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('close', () => resolve());
    });
    const failure = await new Promise<string | undefined>((resolve) => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      const poll = setInterval(() => {
        try {
          if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '') done(undefined);
        } catch {
          // written right now: next poll
        }
      }, 10);
      const timer = setTimeout(() => done(`did not finish starting within ${timeoutMs} ms`), timeoutMs);
      const onError = (error: NodeJS.ErrnoException) =>
        done(error.code === 'ENOENT' ? `${command} not found: install passt (apt-get install passt) for user-mode networking` : error.message);
      // The message waits for 'close': only then has all of passt's stderr been read.
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        void exited.then(() => {
          const last = `${stderr}${partial}`.trim().split('\n').pop() ?? '';
          done(`exited (${signal ?? `status ${code}`}) while starting${last ? `: ${last}` : ''}`);
        });
      };
      child.once('error', onError);
      child.once('exit', onExit);
      function done(why: string | undefined) {
        clearInterval(poll);
        clearTimeout(timer);
        child.off('error', onError);
        child.off('exit', onExit);
        resolve(why);
      }
    });
    if (failure !== undefined) {
      ours.destroy();
      child.kill('SIGKILL');
      await exited;
      throw new Error(failure.startsWith(command) ? failure : `passt ${failure}`);
    }
    started = true;
    for (const line of stderr.split('\n').filter((l) => l !== '')) options.log?.(`passt: ${line}`);
    // Should the framing ever break (StreamResync), recover it by passt's MAC instead of closing.
    const sourceMac = Uint8Array.from(PASST_MAC.split(':').map((byte) => parseInt(byte, 16)));
    return new PasstBackend(ours, child, exited, { ...options, resync: { sourceMac } }, options.log);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
