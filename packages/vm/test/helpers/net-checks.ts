/**
 * The host's half of the user-mode network checks (issue 17), run through the guest agent during the
 * first guest boot: the default guest's eth0 got its address and route from passt's DHCP, a 16 MiB
 * download from an HTTP server on the host's 127.0.0.1 (reached at the gateway 10.0.2.2) arrives byte
 * for byte, and a host client reaches a server in the guest through a published port.
 */
import { createHash, randomBytes } from 'node:crypto';
import { get, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Machine } from '@hype/vm';

const MiB = 1024 * 1024;
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export interface NetCheckOptions {
  /** The host port published to the guest's `guestPort` (on 127.0.0.1). */
  hostPort: number;
  guestPort: number;
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`net: ${what}`);
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** GET url → the body's bytes; retried while the connection is refused (the guest server starting). */
async function fetchBytes(url: string, deadlineMs: number): Promise<Buffer> {
  for (;;) {
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        const request = get(url, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${response.statusCode}`))));
          response.on('error', reject);
        });
        request.on('error', reject);
      });
    } catch (error) {
      if (Date.now() > deadlineMs) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Runs the checks; resolves with a summary, rejects with the first failure. */
export async function runNetChecks(vm: Machine, options: NetCheckOptions): Promise<string> {
  // The address and route from DHCP (/init configures eth0 before it starts the agent).
  const addr = await vm.exec(['sh', '-c', 'ip -4 addr show dev eth0; ip route; cat /etc/resolv.conf']);
  const shown = text(addr.stdout);
  check(addr.exitCode === 0 && /inet 10\.0\.2\.15\/24 /.test(shown), `eth0 has no DHCP address 10.0.2.15/24: ${shown}${text(addr.stderr)}`);
  check(/default via 10\.0\.2\.2 dev eth0/.test(shown), `no default route via 10.0.2.2: ${shown}`);
  check(/^nameserver \S+/m.test(shown), `no nameserver in /etc/resolv.conf from DHCP: ${shown}`);

  // Guest → host: 16 MiB from the host's loopback through the gateway address.
  const blob = randomBytes(16 * MiB);
  const server = createServer((request, response) => {
    if (request.url !== '/blob') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-length': blob.length }).end(blob);
  });
  const port = await listen(server);
  try {
    const r = await vm.exec(['sh', '-c', `wget -q -O - http://10.0.2.2:${port}/blob | sha256sum`], { timeoutMs: 300_000 });
    check(r.exitCode === 0 && text(r.stdout).startsWith(sha256(blob)), `16 MiB from http://10.0.2.2:${port}/blob: ${text(r.stdout)}${text(r.stderr)}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // Host → guest: a published port reaches busybox httpd in the guest.
  const serve = await vm.exec([
    'sh',
    '-c',
    `mkdir -p /tmp/www && head -c ${4 * MiB} /dev/urandom >/tmp/www/blob && sha256sum /tmp/www/blob && httpd -p ${options.guestPort} -h /tmp/www`,
  ]);
  check(serve.exitCode === 0, `httpd in the guest: ${text(serve.stdout)}${text(serve.stderr)}`);
  const guestHash = text(serve.stdout).split(' ')[0];
  try {
    const body = await fetchBytes(`http://127.0.0.1:${options.hostPort}/blob`, Date.now() + 60_000);
    check(sha256(body) === guestHash, `published port ${options.hostPort} → guest ${options.guestPort}: ${body.length} bytes, hash differs`);
  } finally {
    await vm.exec(['sh', '-c', 'killall httpd']).catch(() => {});
  }
  return 'net: dhcp 10.0.2.15/24, 16MiB guest<-host loopback, 4MiB host<-guest via publish';
}
