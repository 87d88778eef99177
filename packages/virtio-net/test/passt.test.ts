// startPasst: the command line it builds, its refusals, and the real passt (Debian's, installed by
// scripts/setup.sh) answering an ARP request for its gateway over the inherited socket.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { passtArguments, passtPortSpec, startPasst } from '../node/index.js';

function havePasst(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v passt'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
/** passt refuses to start without a host interface that has a default route. */
function haveDefaultRoute(): boolean {
  try {
    return readFileSync('/proc/net/route', 'utf8').split('\n').some((line) => line.split('\t')[1] === '00000000');
  } catch {
    return false;
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'hype-passt-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('passt command line', () => {
  it('hands passt the socket as fd 3, the address, prefix, gateway and the forwards', () => {
    const args = passtArguments(
      {
        publish: [
          { protocol: 'tcp', hostPort: 8080, guestPort: 80 },
          { protocol: 'tcp', hostPort: 2222, guestPort: 22, hostAddress: '127.0.0.1' },
          { protocol: 'udp', hostPort: 5353, guestPort: 53 },
        ],
        dns: ['10.0.2.3'],
      },
      '/x/pid',
    );
    expect(args).toEqual([
      '--foreground', '--quiet', '--fd', '3', '--pid', '/x/pid', '--mac-addr', '52:55:0a:00:02:02',
      '--address', '10.0.2.15', '--netmask', '24', '--gateway', '10.0.2.2',
      '--dns', '10.0.2.3',
      '--tcp-ports', '8080:80,127.0.0.1/2222:22', '--udp-ports', '5353:53',
    ]);
  });

  it('forwards nothing unless asked', () => {
    expect(passtPortSpec([], 'tcp')).toBe('none');
    expect(passtArguments({}, '/p').slice(-4)).toEqual(['--tcp-ports', 'none', '--udp-ports', 'none']);
  });

  it('refuses bad options before starting anything', async () => {
    await expect(startPasst({ address: '10.0.2' })).rejects.toThrow('address 10.0.2 is not an IPv4 address');
    await expect(startPasst({ prefixLength: 31 })).rejects.toThrow('prefixLength 31');
    await expect(startPasst({ publish: [{ protocol: 'tcp', hostPort: 0, guestPort: 80 }] })).rejects.toThrow('port 0 must be from 1 to 65535');
    await expect(
      startPasst({ publish: [{ protocol: 'tcp', hostPort: 9000, guestPort: 80 }, { protocol: 'tcp', hostPort: 9000, guestPort: 81 }] }),
    ).rejects.toThrow('tcp port 9000 is forwarded twice');
  });

  it('says how to install passt when it is missing', async () => {
    await expect(startPasst({ command: join(scratch, 'no-such-passt') })).rejects.toThrow(/not found: install passt \(apt-get install passt\)/);
  });

  it('reports the last thing a failing passt said', async () => {
    const fake = join(scratch, 'fake-passt');
    writeFileSync(fake, '#!/bin/sh\necho "Failed to send 12 bytes to syslog" >&2\necho "External interface not usable" >&2\nexit 1\n');
    chmodSync(fake, 0o755);
    await expect(startPasst({ command: fake })).rejects.toThrow('passt exited (status 1) while starting: External interface not usable');
  });

  it('refuses a forwarded host port that is taken (passt would skip it silently)', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await expect(startPasst({ command: 'true', publish: [{ protocol: 'tcp', hostPort: port, guestPort: 80 }] })).rejects.toThrow(
        `passt: host tcp port ${port} is in use; choose another host port`,
      );
    } finally {
      server.close();
    }
  });
});

const MAC_GUEST = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/** An ARP request from the guest (10.0.2.15) for the gateway (10.0.2.2). */
function arpRequest(): Uint8Array {
  return Uint8Array.from([
    ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], ...MAC_GUEST, 0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
    ...MAC_GUEST, 10, 0, 2, 15,
    0, 0, 0, 0, 0, 0, 10, 0, 2, 2,
  ]);
}

describe.skipIf(!havePasst() || !haveDefaultRoute())('the real passt', () => {
  it('answers an ARP request for the gateway, and exits when the backend closes', async () => {
    const backend = await startPasst();
    const pid = backend.pid!;
    const reply = await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ARP reply from passt within 5 s')), 5000);
      backend.onFrame((frame) => {
        if (frame[12] === 0x08 && frame[13] === 0x06 && frame[21] === 2) {
          clearTimeout(timer);
          resolve(frame);
        }
      });
      backend.send(arpRequest());
    });
    expect([...reply.subarray(0, 6)]).toEqual(MAC_GUEST); // to the guest
    expect([...reply.subarray(6, 12)]).toEqual([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]); // from PASST_MAC (--mac-addr)
    expect([...reply.subarray(28, 32)]).toEqual([10, 0, 2, 2]); // the gateway's address is the sender
    expect([...reply.subarray(38, 42)]).toEqual([10, 0, 2, 15]);
    await backend.close();
    expect(() => process.kill(pid, 0)).toThrow(); // gone
  });
});
