// The TAP backend against the kernel. Without privileges: name checks and the errors that need no TAP
// device. As root (with /dev/net/tun and `unshare`), this file runs itself again in child vitest processes
// inside a fresh network namespace (`unshare --net`), so nothing touches the host's network:
//   HYPE_TAP_TEST=netns               as root: a TAP interface with 10.1.0.1/24 on the host side, and the
//                                     backend playing a guest 10.1.0.2: ARP, ICMP echo and UDP both ways,
//                                     checked byte-wise; the interface down (EIO); pause with the kernel's
//                                     queue dropping; deleting the interface; a VirtioNetDevice over it.
//   HYPE_TAP_TEST=netns-unprivileged  in a user namespace without capabilities in that network namespace:
//                                     creating an interface fails with the CAP_NET_ADMIN message, and one
//                                     made beforehand for the user (`ip tuntap add ... user`) opens.
// The backend's errno paths one by one, over fakes, are in tap-backend-io.test.ts.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VirtioTestDriver } from '@hype/virtio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TapBackend, TapError, checkTapName, openTapBackend } from '../node/index.js';
import { NET_HDR, NetQueue, VirtioNetDevice } from '../src/index.js';
import { RX_BUF, concat, groupReceived, sameBytes } from './helpers.js';

const MODE = process.env.HYPE_TAP_TEST as undefined | 'netns' | 'netns-unprivileged';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const THIS_FILE = 'packages/virtio-net/test/tap-backend.test.ts';

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(MODE !== undefined)('without privileges', () => {
  it('interface names: 1-15 bytes of UTF-8, no "/", ":", whitespace or NUL, not "." or ".."', () => {
    for (const ok of ['tap0', 'a', 'x'.repeat(15), 'tap%d', 'vm-1_net.2', 'é'.repeat(7)]) expect(checkTapName(ok)).toBe(ok);
    const bad: Array<[unknown, RegExp]> = [
      ['', /"" is empty/],
      ['x'.repeat(16), /is 16 bytes long; interface names are at most 15/],
      ['é'.repeat(8), /is 16 bytes long/],
      ['a/b', /contains a "\/"/],
      ['a b', /whitespace/],
      ['a\tb', /whitespace/],
      ['a\nb', /whitespace/],
      ['a:1', /":"/],
      ['a\0', /NUL/],
      ['.', /is "." or ".."/],
      ['..', /is "." or ".."/],
    ];
    for (const [name, message] of bad) expect(() => checkTapName(name), JSON.stringify(name)).toThrow(message);
    expect(() => checkTapName(5)).toThrow(TypeError);
    expect(() => checkTapName(undefined)).toThrow(/must be a string \(got undefined\)/);
  });

  it('openTapBackend rejects a bad name before opening anything', async () => {
    await expect(openTapBackend('bad name', { devicePath: '/nonexistent/hype-tun' })).rejects.toThrow(RangeError);
  });

  it('no /dev/net/tun: a one-line error that says the kernel needs the tun module', async () => {
    const error = (await openTapBackend('tap0', { devicePath: '/nonexistent/hype-tun' }).catch((e: unknown) => e)) as TapError;
    expect(error).toBeInstanceOf(TapError);
    expect(error.message).toBe(
      'virtio-net: cannot open TAP interface tap0: /nonexistent/hype-tun does not exist: the kernel needs the tun module (`modprobe tun`; in a container, pass the device in)',
    );
    expect([error.code, error.errno]).toEqual(['ENOENT', 2]);
  });

  it('a device path that is not the TUN clone device: TUNSETIFF fails with ENOTTY', async () => {
    await expect(openTapBackend('tap0', { devicePath: '/dev/null' })).rejects.toThrow(
      /^virtio-net: cannot open TAP interface tap0: TUNSETIFF failed: ENOTTY \(Inappropriate ioctl for device\)$/,
    );
  });
});

// ---- As root: run this file again inside fresh network namespaces. ----

const root = process.getuid?.() === 0;
const hasTun = existsSync('/dev/net/tun');
const canUnshare = MODE === undefined && root && hasTun && spawnSync('unshare', ['--net', '--', 'true']).status === 0;
const privilegedSkip = !root
  ? 'needs root (creates TAP interfaces in a fresh network namespace)'
  : !hasTun
    ? 'no /dev/net/tun (modprobe tun)'
    : '`unshare --net` does not work here (no CAP_SYS_ADMIN?)';

/** Runs this file in a child vitest under `prefix` with HYPE_TAP_TEST=mode; resolves with its exit status and output. */
function runNested(mode: NonNullable<typeof MODE>, prefix: string[]): Promise<{ status: number | null; output: string }> {
  const vitest = join(createRequire(import.meta.url).resolve('vitest/package.json'), '..', 'vitest.mjs');
  const env: NodeJS.ProcessEnv = { HYPE_TAP_TEST: mode, HYPE_TAP_HOST_NETNS: readlinkSync('/proc/self/ns/net'), NO_COLOR: '1', FORCE_COLOR: '0' };
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('VITEST') && !(key in env)) env[key] = value;
  return new Promise((resolve) => {
    const child = spawn(prefix[0], [...prefix.slice(1), process.execPath, vitest, 'run', '--project', 'unit', '--reporter', 'verbose', THIS_FILE], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('close', (status) => resolve({ status, output }));
  });
}

/** Asserts the nested run passed and ran its tests (output shown on failure). */
function expectPassed({ status, output }: { status: number | null; output: string }, tests: number): void {
  expect(output, output).toMatch(new RegExp(`Tests\\s+${tests} passed\\b`));
  expect(status, output).toBe(0);
}

describe.skipIf(MODE !== undefined)('as root, in a fresh network namespace', () => {
  it.skipIf(!canUnshare)(`the kernel answers ARP, ICMP and UDP through the backend (HYPE_TAP_TEST=netns) ${canUnshare ? '' : `[skipped: ${privilegedSkip}]`}`, async () => {
    expectPassed(await runNested('netns', ['unshare', '--net', '--']), 7);
  });

  it.skipIf(!canUnshare)(`without CAP_NET_ADMIN: the permission error, and an interface made for the user opens (HYPE_TAP_TEST=netns-unprivileged) ${canUnshare ? '' : `[skipped: ${privilegedSkip}]`}`, async () => {
    // The network namespace belongs to the initial user namespace; `unshare --user` drops every capability
    // there. The interface created beforehand belongs to uid 0, the process's uid in the kernel's eyes.
    const script = 'ip tuntap add dev hypeown mode tap user 0 && exec unshare --user -- "$@"';
    expectPassed(await runNested('netns-unprivileged', ['unshare', '--net', '--', 'sh', '-c', script, 'sh']), 2);
  });
});

// ---- Inside the namespace. ----

/** Refuses to run the privileged tests anywhere but in a namespace of their own. */
function expectFreshNamespace(): void {
  expect(process.env.HYPE_TAP_HOST_NETNS).toMatch(/^net:\[\d+\]$/);
  expect(readlinkSync('/proc/self/ns/net')).not.toBe(process.env.HYPE_TAP_HOST_NETNS);
}

/** The interfaces of this network namespace (/proc/self/net/dev; /sys/class/net shows the host's). */
function links(): string[] {
  return readFileSync('/proc/self/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .filter((line) => line.includes(':'))
    .map((line) => line.split(':')[0].trim());
}

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

// Frame building and checking (IPv4, no options).
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const GUEST_IP = Uint8Array.of(10, 1, 0, 2);
const HOST_IP = Uint8Array.of(10, 1, 0, 1);
const BROADCAST = new Uint8Array(6).fill(0xff);
const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const be16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const macOf = (text: string) => Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ethernet = (dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array) => concat([dst, src, u16(type), payload]);

function arp(op: number, sha: Uint8Array, spa: Uint8Array, tha: Uint8Array, tpa: Uint8Array): Uint8Array {
  return concat([u16(1), u16(0x0800), Uint8Array.of(6, 4), u16(op), sha, spa, tha, tpa]);
}

function ipv4(protocol: number, src: Uint8Array, dst: Uint8Array, payload: Uint8Array): Uint8Array {
  const header = concat([Uint8Array.of(0x45, 0), u16(20 + payload.length), u16(0x1234), u16(0), Uint8Array.of(64, protocol), u16(0), src, dst]);
  header.set(u16(checksum(header)), 10);
  return concat([header, payload]);
}

function icmpEcho(type: number, id: number, seq: number, data: Uint8Array): Uint8Array {
  const msg = concat([Uint8Array.of(type, 0), u16(0), u16(id), u16(seq), data]);
  msg.set(u16(checksum(msg)), 2);
  return msg;
}

/** UDP with checksum 0 (none, allowed over IPv4). */
const udp = (srcPort: number, dstPort: number, data: Uint8Array) => concat([u16(srcPort), u16(dstPort), u16(8 + data.length), u16(0), data]);

interface Ipv4View {
  protocol: number;
  src: Uint8Array;
  dst: Uint8Array;
  payload: Uint8Array;
}
/** The IPv4 packet in an Ethernet frame, its header checksum verified; undefined for anything else. */
function parseIpv4(frame: Uint8Array): Ipv4View | undefined {
  if (frame.length < 34 || be16(frame, 12) !== 0x0800 || frame[14] !== 0x45) return undefined;
  const total = be16(frame, 16);
  expect(checksum(frame.subarray(14, 34))).toBe(0);
  return { protocol: frame[23], src: frame.slice(26, 30), dst: frame.slice(30, 34), payload: frame.slice(34, 14 + total) };
}

const isUdpTo = (port: number) => (frame: Uint8Array) => {
  const p = parseIpv4(frame);
  return p !== undefined && p.protocol === 17 && be16(p.payload, 2) === port;
};

describe.runIf(MODE === 'netns')('[nested run] inside a fresh network namespace, as root', () => {
  const NAME = 'hypetap0';
  let tap: TapBackend;
  let hostMac: Uint8Array;
  const frames: Uint8Array[] = [];
  const sockets: UdpSocket[] = [];

  /** The next frame (since `from`) matching `match`. */
  async function frameWhere(match: (f: Uint8Array) => boolean, what: string, from = 0): Promise<Uint8Array> {
    let found: Uint8Array | undefined;
    await until(() => (found = frames.slice(from).find(match)) !== undefined, what);
    return found!;
  }

  async function udpSocket(port = 0): Promise<UdpSocket> {
    const socket = createSocket('udp4');
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.bind(port, '10.1.0.1', resolve));
    return socket;
  }

  beforeAll(async () => {
    expectFreshNamespace();
    expect(links()).toEqual(['lo']);
    // No IPv6 on the new interface: no router solicitations or MLD reports among the frames.
    if (existsSync('/proc/sys/net/ipv6')) writeFileSync('/proc/sys/net/ipv6/conf/default/disable_ipv6', '1');
    tap = await openTapBackend(NAME, { framesPerWakeup: 4 });
    tap.onFrame((f) => frames.push(f));
    hostMac = macOf(JSON.parse(ip('-j', 'link', 'show', NAME))[0].address);
  });

  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });

  afterAll(() => tap?.close());

  it('opens: the kernel numbers a %d template; a second open is EBUSY, a non-TAP interface EINVAL', async () => {
    expect(tap.name).toBe(NAME);
    expect(links().includes(NAME)).toBe(true);
    const numbered = await openTapBackend('hype%d');
    expect(numbered.name).toBe('hype0');
    numbered.close();
    await expect(openTapBackend(NAME)).rejects.toThrow(/^virtio-net: cannot open TAP interface hypetap0: hypetap0 is in use by another process$/);
    await expect(openTapBackend('lo')).rejects.toThrow(/^virtio-net: cannot open TAP interface lo: lo exists and is not a TAP interface/);
  });

  it('while the interface is down, frames are dropped (EIO) and the backend stays open; then it comes up', () => {
    const request = ethernet(BROADCAST, GUEST_MAC, 0x0806, arp(1, GUEST_MAC, GUEST_IP, new Uint8Array(6), HOST_IP));
    expect(tap.send(request)).toBe(true);
    expect([tap.framesDropped, tap.lastDropReason, tap.closed]).toEqual([1, 'EIO', false]);
    ip('link', 'set', NAME, 'up');
    ip('addr', 'add', '10.1.0.1/24', 'dev', NAME);
  });

  it('ARP: the kernel answers the guest\'s request, byte for byte', async () => {
    const from = frames.length;
    tap.send(ethernet(BROADCAST, GUEST_MAC, 0x0806, arp(1, GUEST_MAC, GUEST_IP, new Uint8Array(6), HOST_IP)));
    const reply = await frameWhere((f) => be16(f, 12) === 0x0806, 'the ARP reply', from);
    expect([...reply]).toEqual([...ethernet(GUEST_MAC, hostMac, 0x0806, arp(2, hostMac, HOST_IP, GUEST_MAC, GUEST_IP))]);
    expect(tap.framesSent).toBe(1);
  });

  it('ICMP echo and UDP both ways, checked field by field with their checksums', async () => {
    ip('neigh', 'replace', '10.1.0.2', 'lladdr', '52:54:00:12:34:56', 'dev', NAME, 'nud', 'permanent');

    // Echo request from the guest -> echo reply from the kernel.
    const data = Uint8Array.from({ length: 56 }, (_, i) => i);
    let from = frames.length;
    tap.send(ethernet(hostMac, GUEST_MAC, 0x0800, ipv4(1, GUEST_IP, HOST_IP, icmpEcho(8, 0x4859, 7, data))));
    const echo = await frameWhere((f) => parseIpv4(f)?.protocol === 1, 'the echo reply', from);
    expect([...echo.subarray(0, 12)]).toEqual([...GUEST_MAC, ...hostMac]);
    const echoIp = parseIpv4(echo)!;
    expect([[...echoIp.src], [...echoIp.dst]]).toEqual([[...HOST_IP], [...GUEST_IP]]);
    expect(checksum(echoIp.payload)).toBe(0);
    expect([...echoIp.payload]).toEqual([...icmpEcho(0, 0x4859, 7, data)]);

    // A datagram from a kernel socket -> a frame for the guest.
    from = frames.length;
    const sender = await udpSocket();
    const message = new TextEncoder().encode('hello from the host');
    sender.send(message, 4000, '10.1.0.2');
    const datagram = await frameWhere(isUdpTo(4000), 'the UDP frame', from);
    expect([...datagram.subarray(0, 12)]).toEqual([...GUEST_MAC, ...hostMac]);
    const udpIp = parseIpv4(datagram)!;
    expect([[...udpIp.src], [...udpIp.dst]]).toEqual([[...HOST_IP], [...GUEST_IP]]);
    expect([be16(udpIp.payload, 0), be16(udpIp.payload, 4)]).toEqual([sender.address().port, 8 + message.length]);
    expect([...udpIp.payload.subarray(8)]).toEqual([...message]);
    const pseudo = concat([udpIp.src, udpIp.dst, Uint8Array.of(0, 17), u16(udpIp.payload.length), udpIp.payload]);
    expect(checksum(pseudo)).toBe(0); // computed by the kernel in software: no offloads

    // A datagram from the guest -> a kernel socket.
    const receiver = await udpSocket();
    const got = new Promise<[Buffer, { address: string; port: number }]>((resolve) => receiver.once('message', (msg, rinfo) => resolve([msg, rinfo])));
    const payload = new TextEncoder().encode('hello from the guest');
    tap.send(ethernet(hostMac, GUEST_MAC, 0x0800, ipv4(17, GUEST_IP, HOST_IP, udp(4001, receiver.address().port, payload))));
    const [msg, rinfo] = await got;
    expect(new Uint8Array(msg)).toEqual(payload);
    expect([rinfo.address, rinfo.port]).toEqual(['10.1.0.2', 4001]);

    // A frame the kernel refuses (shorter than an Ethernet header): dropped, the backend stays open.
    const dropped = tap.framesDropped;
    expect(tap.send(new Uint8Array(10))).toBe(true);
    expect([tap.framesDropped - dropped, tap.lastDropReason, tap.closed]).toEqual([1, 'EINVAL', false]);
  });

  it('paused: nothing is read and the kernel\'s TAP queue drops beyond txqueuelen; resumed: the queued frames arrive in order', async () => {
    ip('link', 'set', NAME, 'txqueuelen', '8');
    const sender = await udpSocket();
    const from = frames.length;
    const received = tap.framesReceived;
    tap.pause();
    for (let i = 0; i < 40; i++) sender.send(Uint8Array.of(i), 4002, '10.1.0.2');
    await sleep(100);
    expect(tap.framesReceived).toBe(received);
    tap.resume();
    await until(() => frames.slice(from).filter(isUdpTo(4002)).length > 4, 'the queued frames');
    await sleep(100);
    const seqs = frames.slice(from).filter(isUdpTo(4002)).map((f) => parseIpv4(f)!.payload[8]);
    // What the kernel queued (8 frames: tun's ring is txqueuelen long), more than framesPerWakeup (4):
    // the level-triggered poll woke again. The kernel dropped the rest (counted as the interface's TX drops).
    expect(seqs.length).toBeGreaterThan(4);
    expect(seqs.length).toBeLessThan(40);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    ip('link', 'set', NAME, 'txqueuelen', '1000');
  });

  it('deleting the interface closes the backend with an error; close() removes a non-persistent one', async () => {
    const doomed = await openTapBackend('hypedel');
    const closes: Array<Error | undefined> = [];
    doomed.onClose((e) => closes.push(e));
    doomed.onFrame(() => {});
    ip('link', 'del', 'hypedel');
    await until(() => closes.length === 1, 'onClose');
    expect(closes[0]).toBeInstanceOf(TapError);
    expect(closes[0]!.message).toMatch(/^virtio-net: TAP interface hypedel: (read|poll) failed: EBADF/);
    expect(doomed.closed).toBe(true);

    const other = await openTapBackend('hypeclose');
    expect(links().includes('hypeclose')).toBe(true);
    const otherCloses: Array<Error | undefined> = [];
    other.onClose((e) => otherCloses.push(e));
    other.close();
    expect(links().includes('hypeclose')).toBe(false);
    await until(() => otherCloses.length === 1, 'onClose');
    expect(otherCloses).toEqual([undefined]);
  });

  it('a VirtioNetDevice over the TAP: the guest ARPs for the host and gets the reply in its receive queue', async () => {
    const dev = await openTapBackend('hypedev');
    ip('link', 'set', 'hypedev', 'up');
    ip('addr', 'add', '10.2.0.1/24', 'dev', 'hypedev');
    const devMac = macOf(JSON.parse(ip('-j', 'link', 'show', 'hypedev'))[0].address);
    const device = new VirtioNetDevice({ backend: dev, mac: GUEST_MAC });
    try {
      const drv = new VirtioTestDriver(device, { queueSize: 64, ramSize: 16 << 20 });
      drv.init();
      for (let i = 0; i < 8; i++) drv.queue(NetQueue.RX).addChain([drv.writable(RX_BUF)]);
      drv.notify(NetQueue.RX);
      const request = ethernet(BROADCAST, GUEST_MAC, 0x0806, arp(1, GUEST_MAC, Uint8Array.of(10, 2, 0, 2), new Uint8Array(6), Uint8Array.of(10, 2, 0, 1)));
      drv.queue(NetQueue.TX).addChain([drv.readable(concat([new Uint8Array(NET_HDR.SIZE), request]))]);
      drv.notify(NetQueue.TX);
      const expected = ethernet(GUEST_MAC, devMac, 0x0806, arp(2, devMac, Uint8Array.of(10, 2, 0, 1), GUEST_MAC, Uint8Array.of(10, 2, 0, 2)));
      const got: Uint8Array[] = [];
      await until(() => {
        for (const g of groupReceived(drv.takeUsed(NetQueue.RX), (u) => drv.writtenBytes(u))) got.push(g.frame);
        return got.some((f) => sameBytes(f, expected));
      }, 'the ARP reply in the guest');
      expect(dev.framesSent).toBe(1);
      expect(device.linkUp).toBe(true);
    } finally {
      await device.close();
    }
    expect(dev.closed).toBe(true);
  });
});

describe.runIf(MODE === 'netns-unprivileged')('[nested run] inside a fresh network namespace, without CAP_NET_ADMIN', () => {
  beforeAll(() => expectFreshNamespace());

  it('creating an interface fails with the permission error naming it and the way out', async () => {
    const error = (await openTapBackend('hypenew').catch((e: unknown) => e)) as TapError;
    expect(error).toBeInstanceOf(TapError);
    expect(error.message).toBe(
      'virtio-net: cannot open TAP interface hypenew: permission denied: creating a TAP interface needs CAP_NET_ADMIN (run as root), ' +
        'or create it beforehand with `ip tuntap add dev hypenew mode tap user $USER` and then that user can open it',
    );
    expect(error.code).toBe('EPERM');
  });

  it('an interface created beforehand for this user opens (and, down, drops with EIO)', async () => {
    const tap = await openTapBackend('hypeown');
    expect(tap.name).toBe('hypeown');
    expect(tap.send(new Uint8Array(60))).toBe(true);
    expect(tap.lastDropReason).toBe('EIO');
    tap.close();
  });
});
