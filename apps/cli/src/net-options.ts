// --net, --mac and --publish: what network interfaces the guest gets and how they reach the host.
import { isIPv4 } from 'node:net';
// The Node-free core, not /node: this runs for every command line, before anything boots.
import { sameHostPort, type PortForward } from '@hype/virtio-net';
import { describeValue } from './options.js';
import { UsageError } from './usage-error.js';

/** One `--net` value. */
export type NetSpec = { kind: 'none' } | { kind: 'user'; mac?: string } | { kind: 'tap'; name: string; mac?: string };

/** A network interface the VM gets (eth0, eth1, ... in order). */
export type CliNic =
  | { kind: 'user'; mac?: string; publish: PortForward[] }
  | { kind: 'tap'; name: string; mac?: string };

/** Linux's IFNAMSIZ less the terminating NUL. */
const MAX_IFNAME = 15;

/** `aa:bb:cc:dd:ee:ff`, unicast and not all zero (what a NIC can have); returned lower-case. */
export function parseMac(value: unknown, label: string): string {
  const at = describeValue(label, value);
  if (typeof value !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(value)) {
    throw new UsageError(`${at}: a MAC address is six hex pairs, e.g. 52:54:00:12:34:56`);
  }
  const first = parseInt(value.slice(0, 2), 16);
  if (first & 1) throw new UsageError(`${at}: a multicast address (the first byte is odd); use e.g. 52:54:00:12:34:56`);
  if (/^(00:){5}00$/.test(value)) throw new UsageError(`${at}: all zero is not a MAC address`);
  return value.toLowerCase();
}

/** `none`, `user[,mac=M]` or `tap=NAME[,mac=M]`. */
export function parseNetSpec(value: unknown, label: string): NetSpec {
  const at = describeValue(label, value);
  if (typeof value !== 'string') throw new UsageError(`${at}: say "user", "tap=NAME" or "none"`);
  const [base = '', ...rest] = value.split(',');
  let mac: string | undefined;
  for (const option of rest) {
    if (!option.startsWith('mac=')) throw new UsageError(`${at}: unknown option "${option}"; the only one is mac=MAC`);
    if (mac !== undefined) throw new UsageError(`${at}: mac= given twice`);
    mac = parseMac(option.slice('mac='.length), label);
  }
  const withMac = mac === undefined ? {} : { mac };
  if (base === 'none') {
    if (mac !== undefined) throw new UsageError(`${at}: "none" has no MAC`);
    return { kind: 'none' };
  }
  if (base === 'user') return { kind: 'user', ...withMac };
  if (base.startsWith('tap=')) {
    const name = base.slice('tap='.length);
    if (name === '' || name.length > MAX_IFNAME || !/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') {
      throw new UsageError(`${at}: the TAP interface name must be 1-${MAX_IFNAME} letters, digits, '-', '_' or '.'`);
    }
    return { kind: 'tap', name, ...withMac };
  }
  throw new UsageError(
    `${at}: say "user" (rootless networking through passt), "tap=NAME" (an existing TAP device, or one hype may create as root) or "none"`,
  );
}

function parsePort(text: string, at: string, what: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new UsageError(`${at}: the ${what} port must be a number from 1 to 65535`);
  return port;
}

/** `[HOST_ADDRESS:]HOST_PORT:GUEST_PORT[/tcp|/udp]` or `PORT[/tcp|/udp]` (the same port on both sides). */
export function parsePublish(value: unknown, label: string): PortForward {
  const at = describeValue(label, value);
  if (typeof value !== 'string' || value === '') {
    throw new UsageError(`${at}: say HOST_PORT:GUEST_PORT, e.g. 8080:80 (or 127.0.0.1:8080:80, 5353:53/udp)`);
  }
  const slash = value.lastIndexOf('/');
  const protocolText = slash >= 0 ? value.slice(slash + 1) : 'tcp';
  if (protocolText !== 'tcp' && protocolText !== 'udp') throw new UsageError(`${at}: the protocol after / must be tcp or udp`);
  const parts = (slash >= 0 ? value.slice(0, slash) : value).split(':');
  if (parts.length > 3) throw new UsageError(`${at}: say [HOST_ADDRESS:]HOST_PORT:GUEST_PORT, e.g. 8080:80`);
  const hostAddress = parts.length === 3 ? parts[0] : undefined;
  if (hostAddress !== undefined && !isIPv4(hostAddress)) throw new UsageError(`${at}: ${hostAddress} is not an IPv4 address`);
  const hostPort = parsePort(parts[parts.length === 3 ? 1 : 0], at, 'host');
  const guestPort = parts.length === 1 ? hostPort : parsePort(parts[parts.length - 1], at, 'guest');
  return { protocol: protocolText, hostPort, guestPort, ...(hostAddress !== undefined ? { hostAddress } : {}) };
}

/** The most network interfaces a VM gets (virtio slots are shared with the disks and the rest). */
export const MAX_NICS = 8;

/**
 * The VM's NICs from `--net` (in order), `--mac` (the first NIC's MAC) and `--publish` (forwards through
 * the first `user` NIC). `none` alone means no NIC; it cannot be combined with others.
 */
export function resolveNics(
  nets: readonly NetSpec[] | undefined,
  mac: string | undefined,
  publish: readonly PortForward[] | undefined,
  labels: { nets?: string; mac?: string; publish?: string } = {},
): CliNic[] {
  const specs = nets ?? [];
  const netLabel = labels.nets ?? '--net';
  if (specs.some((s) => s.kind === 'none') && specs.length > 1) throw new UsageError(`${netLabel}: "none" cannot be combined with other networks`);
  const nics: CliNic[] = specs.flatMap((spec): CliNic[] => {
    if (spec.kind === 'none') return [];
    if (spec.kind === 'user') return [{ kind: 'user', publish: [], ...(spec.mac !== undefined ? { mac: spec.mac } : {}) }];
    return [spec];
  });
  if (nics.length > MAX_NICS) throw new UsageError(`${netLabel}: ${nics.length} networks, at most ${MAX_NICS}`);
  const taps = nics.flatMap((n) => (n.kind === 'tap' ? [n.name] : []));
  const twice = taps.find((name, i) => taps.indexOf(name) !== i);
  if (twice !== undefined) throw new UsageError(`${netLabel}: tap=${twice} given twice; a TAP device serves one NIC`);
  if (mac !== undefined) {
    const first = nics[0];
    if (!first) throw new UsageError(`${labels.mac ?? '--mac'}: there is no network interface; add --net user or --net tap=NAME`);
    if (first.mac !== undefined) throw new UsageError(`${labels.mac ?? '--mac'}: the first network already has mac= in ${netLabel}`);
    nics[0] = { ...first, mac };
  }
  const macs = nics.flatMap((n) => (n.mac !== undefined ? [n.mac] : []));
  const sameMac = macs.find((m, i) => macs.indexOf(m) !== i);
  if (sameMac !== undefined) throw new UsageError(`${netLabel}: two interfaces with MAC ${sameMac}`);
  if (publish !== undefined && publish.length > 0) {
    const user = nics.find((n): n is Extract<CliNic, { kind: 'user' }> => n.kind === 'user');
    if (!user) {
      throw new UsageError(`${labels.publish ?? '--publish'}: forwards ports through user-mode networking; add --net user`);
    }
    for (const [i, forward] of publish.entries()) {
      if (publish.slice(0, i).some((other) => sameHostPort(other, forward))) {
        throw new UsageError(`${labels.publish ?? '--publish'}: host ${forward.protocol} port ${forward.hostPort} is published twice`);
      }
    }
    user.publish = [...publish];
  }
  return nics;
}
