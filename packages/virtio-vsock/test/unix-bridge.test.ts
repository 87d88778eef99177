// The Firecracker-compatible Unix-socket bridge end to end, in a temp dir, with a scripted guest:
// `CONNECT <port>\n` -> `OK <host port>\n` and bytes both ways; refusals; bad CONNECT lines; guest
// connections forwarded to `${path}_<port>`; close().
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioTestDriver } from '@hype/virtio/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONNECT_LINE_MAX, VsockUnixBridge, parseConnectLine } from '../node/index.js';
import { HOST_PORT_FIRST, VsockDevice } from '../src/index.js';
import { type GuestConn, GuestStack, until } from './guest-stack.js';
import { pattern } from './helpers.js';

let dir: string;
const cleanups: Array<() => unknown> = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hype-vsock-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

async function setup(options: { lineTimeoutMs?: number } = {}) {
  const device = new VsockDevice({ connectTimeoutMs: 1000 });
  const drv = new VirtioTestDriver(device, { ramSize: 64 << 20, queueSize: 256 });
  drv.init();
  const stack = new GuestStack(drv);
  stack.start();
  cleanups.push(() => stack.stop());
  const path = join(dir, 'v.sock');
  const warnings: string[] = [];
  const bridge = new VsockUnixBridge(device, path, { connectLineTimeoutMs: options.lineTimeoutMs, log: { warn: (m) => warnings.push(m) } });
  await bridge.start();
  cleanups.push(() => bridge.close());
  return { device, drv, stack, bridge, path, warnings };
}

/** A client on the bridge: everything it receives, and when it closed. */
function client(path: string) {
  const socket = createConnection(path);
  const state = { data: Buffer.alloc(0), closed: false, ended: false };
  socket.on('data', (b: Buffer) => (state.data = Buffer.concat([state.data, b])));
  socket.on('end', () => (state.ended = true));
  socket.on('close', () => (state.closed = true));
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  return { socket, state };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('parseConnectLine', () => {
  it('reads CONNECT <port> as Firecracker does', () => {
    expect(parseConnectLine('CONNECT 1234')).toBe(1234);
    expect(parseConnectLine('connect 52')).toBe(52);
    expect(parseConnectLine('Connect   7 \r')).toBe(7);
    expect(parseConnectLine('CONNECT 4294967295')).toBe(0xffffffff);
    expect(parseConnectLine('CONNECT 4294967296')).toBeUndefined();
    expect(parseConnectLine('CONNECT')).toBeUndefined();
    expect(parseConnectLine('CONNECT -1')).toBeUndefined();
    expect(parseConnectLine('CONNECT 12a')).toBeUndefined();
    expect(parseConnectLine('HELLO 1')).toBeUndefined();
  });
});

describe('VsockUnixBridge', () => {
  it('CONNECT <port> -> OK <host port>, then a byte pipe both ways (bytes after the newline included)', async () => {
    const { stack, path } = await setup();
    stack.listen(1234, (conn) => {
      conn.onData = (b) => conn.write(b); // echo
      conn.onEnd = () => conn.shutdown();
    });
    const c = client(path);
    c.socket.write('CONNECT 1234\nhello');
    await until(() => c.state.data.toString().includes('hello'), 5000, 'the echo');
    expect(c.state.data.toString()).toBe(`OK ${HOST_PORT_FIRST}\nhello`);
    c.socket.end(' world');
    await until(() => c.state.ended, 5000, 'the end of the echo');
    expect(c.state.data.toString()).toBe(`OK ${HOST_PORT_FIRST}\nhello world`);
    await until(() => c.state.closed, 5000, 'the socket to close');
  });

  it('moves 2 MiB each way byte-exact, with backpressure', async () => {
    const { stack, path, device } = await setup();
    let guestSide!: GuestConn;
    const fromGuest = pattern(2 << 20, 7);
    stack.listen(99, (conn) => {
      guestSide = conn;
      conn.write(fromGuest);
      conn.shutdown();
    });
    const c = client(path);
    c.socket.write('CONNECT 99\n');
    const toGuest = pattern(2 << 20, 3);
    await until(() => c.state.data.length > 0, 5000, 'OK');
    c.socket.end(toGuest);
    await until(() => c.state.ended && guestSide?.ended, 20_000, 'both directions to finish');
    const okLine = `OK ${HOST_PORT_FIRST}\n`;
    expect(c.state.data.subarray(0, okLine.length).toString()).toBe(okLine);
    expect(sha(c.state.data.subarray(okLine.length))).toBe(sha(fromGuest));
    expect(sha(Buffer.concat(guestSide.received))).toBe(sha(toGuest));
    for (const conn of device.connections()) expect(conn.readableLength).toBeLessThanOrEqual(device.bufAlloc);
  }, 30_000);

  it('closes the client without a reply when the guest refuses or the line is bad, long or late', async () => {
    const { path, warnings } = await setup({ lineTimeoutMs: 200 });
    const refused = client(path);
    refused.socket.write('CONNECT 4321\n');
    const bad = client(path);
    bad.socket.write('HELLO 1\n');
    const long = client(path);
    long.socket.write('CONNECT ' + '1'.repeat(CONNECT_LINE_MAX));
    const late = client(path);
    const early = client(path);
    early.socket.end('CONN');
    for (const c of [refused, bad, long, late, early]) await until(() => c.state.closed, 5000, 'the client to be closed');
    for (const c of [refused, bad, long, late, early]) expect(c.state.data.length).toBe(0);
    expect(warnings.some((w) => w.includes('CONNECT 4321') && w.includes('refused'))).toBe(true);
    expect(warnings.some((w) => w.includes('bad CONNECT line'))).toBe(true);
    expect(warnings.some((w) => w.includes(`within ${CONNECT_LINE_MAX} bytes`))).toBe(true);
    expect(warnings.some((w) => w.includes('no CONNECT line within 200 ms'))).toBe(true);
    expect(warnings.some((w) => w.includes('ended before its CONNECT line'))).toBe(true);
  });

  it('forwards a guest connection to host port P to `${path}_P`, and RSTs it when nobody listens there', async () => {
    const { stack, path } = await setup();
    const server: Server = createServer({ allowHalfOpen: true });
    const accepted: Socket[] = [];
    const got: Buffer[] = [];
    server.on('connection', (s) => {
      accepted.push(s);
      s.on('data', (b: Buffer) => got.push(b));
      s.write('hi guest');
    });
    await new Promise<void>((resolve) => server.listen(`${path}_5000`, resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const conn = await stack.connect(5000);
    conn.write(Buffer.from('hi host'));
    await until(() => Buffer.concat(got).toString() === 'hi host' && conn.text() === 'hi guest', 5000, 'bytes both ways');
    conn.shutdown();
    await until(() => accepted[0].readableEnded, 5000, 'the FIN on the Unix socket');
    accepted[0].end();
    await until(() => conn.ended, 5000, 'the guest to see the host end');

    await expect(stack.connect(5001)).rejects.toThrow(/RST/);
  });

  it('refuses to start on an existing path; close() removes the socket and drops the connections', async () => {
    const taken = join(dir, 'taken.sock');
    writeFileSync(taken, '');
    const device = new VsockDevice();
    await expect(new VsockUnixBridge(device, taken).start()).rejects.toThrow(/already exists/);

    const { stack, path, bridge, device: bridged } = await setup();
    const guests: GuestConn[] = [];
    stack.listen(1, (conn) => guests.push(conn));
    const c = client(path);
    c.socket.write('CONNECT 1\n');
    await until(() => guests.length === 1 && c.state.data.length > 0, 5000, 'the connection');
    expect(bridge.socketCount).toBe(1);
    await bridge.close();
    expect(existsSync(path)).toBe(false);
    await until(() => c.state.closed && guests[0].closed, 5000, 'both ends to close');
    // The port is free for another listener.
    expect(() => bridged.listen(0xffffffff, () => {})).not.toThrow();
  });
});
