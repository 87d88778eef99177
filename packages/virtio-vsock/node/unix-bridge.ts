import { type Server, type Socket, createConnection, createServer } from 'node:net';
import type { VsockConnection } from '../src/connection.js';
import type { VsockDevice } from '../src/device.js';
import { VMADDR_PORT_ANY } from '../src/layout.js';
import { toDuplex } from './duplex.js';

/** Longest `CONNECT <port>\n` line the bridge reads, newline included (Firecracker reads at most 32). */
export const CONNECT_LINE_MAX = 64;
/** How long a host client has to send its whole CONNECT line. */
export const DEFAULT_CONNECT_LINE_TIMEOUT_MS = 5000;

export interface VsockUnixBridgeOptions {
  /** Milliseconds a client has to send `CONNECT <port>\n` before it is disconnected. Default 5000. */
  readonly connectLineTimeoutMs?: number;
  /** Milliseconds to wait for the guest's answer to a CONNECT. Default: the device's `connectTimeoutMs`. */
  readonly connectTimeoutMs?: number;
  /** Where problems are reported (bad CONNECT lines, refused connections). Default: nowhere. */
  readonly log?: { warn(message: string): void };
}

/**
 * The port of a `CONNECT <port>` line (without its newline), or undefined. As Firecracker: the word is
 * case-insensitive, whitespace separates, the port is a decimal u32; a trailing `\r` is tolerated.
 */
export function parseConnectLine(line: string): number | undefined {
  const m = /^\s*connect\s+(\d{1,10})\s*$/i.exec(line);
  if (m === null) return undefined;
  const port = Number(m[1]);
  return port <= 0xffff_ffff ? port : undefined;
}

/**
 * Firecracker's hybrid vsock over Unix sockets, so existing Firecracker vsock clients work unchanged:
 *
 * - Host → guest: a program connects to `socketPath` and writes `CONNECT <port>\n`; the bridge connects
 *   to that guest port and answers `OK <host port>\n` (the port the device assigned), after which the
 *   socket is a plain byte pipe to the guest. If the guest refuses or does not answer, the socket is
 *   closed without a reply. The line is at most CONNECT_LINE_MAX bytes and must arrive within
 *   `connectLineTimeoutMs`; bytes after the newline are forwarded to the guest.
 * - Guest → host: a guest connection to host port P is forwarded to the Unix socket `${socketPath}_P`
 *   if a program listens there; otherwise the guest gets RST. (Ports with their own `device.listen`
 *   stay with that listener: the bridge listens on VMADDR_PORT_ANY.)
 *
 * Both directions keep backpressure (a full Unix socket pauses the connection, so the guest runs out of
 * credit; a full vsock send queue pauses the Unix socket) and half-close (a socket's FIN becomes
 * SHUTDOWN(SEND), the guest's SHUTDOWN(SEND) becomes a FIN).
 */
export class VsockUnixBridge {
  private server: Server | undefined;
  private unlisten: (() => void) | undefined;
  private readonly sockets = new Set<Socket>();
  private closed = false;
  private readonly lineTimeoutMs: number;
  private readonly connectTimeoutMs: number | undefined;
  private readonly log: { warn(message: string): void };

  constructor(
    readonly device: VsockDevice,
    readonly socketPath: string,
    options: VsockUnixBridgeOptions = {},
  ) {
    if (typeof socketPath !== 'string' || socketPath.length === 0) throw new TypeError('VsockUnixBridge: socketPath must be a non-empty path');
    this.lineTimeoutMs = options.connectLineTimeoutMs ?? DEFAULT_CONNECT_LINE_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.log = options.log ?? { warn() {} };
  }

  /** Unix sockets the bridge holds (host clients and forwarded guest connections). */
  get socketCount(): number {
    return this.sockets.size;
  }

  /**
   * Listen on `socketPath` (which must not exist: the error names it) and forward guest connections.
   * Throws if the device already has a VMADDR_PORT_ANY listener.
   */
  async start(): Promise<void> {
    if (this.server !== undefined || this.closed) throw new Error('VsockUnixBridge: start() may be called once');
    const server = createServer({ allowHalfOpen: true }, (socket) => this.handleClient(socket));
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'EADDRINUSE'
            ? new Error(`vsock bridge: ${this.socketPath} already exists (another VM's socket, or a stale file to remove)`)
            : new Error(`vsock bridge: cannot listen on ${this.socketPath}: ${error.message}`),
        );
      };
      server.once('error', onError);
      server.listen(this.socketPath, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (error) => this.log.warn(`vsock bridge ${this.socketPath}: ${error.message}`));
    this.server = server;
    try {
      this.unlisten = this.device.listen(VMADDR_PORT_ANY, (connection) => this.forwardGuest(connection));
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Stop listening (the socket file goes away), stop forwarding, and drop every bridged connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten?.();
    this.unlisten = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** A host program connected: read its CONNECT line, then connect to the guest. */
  private handleClient(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.track(socket);
    socket.on('error', () => {}); // reported through 'close'; the pipe takes over after CONNECT
    let buffered: Buffer = Buffer.alloc(0);
    const fail = (why: string) => {
      this.log.warn(`vsock bridge ${this.socketPath}: ${why}; client disconnected`);
      cleanup();
      socket.destroy();
    };
    const timer = setTimeout(() => fail(`no CONNECT line within ${this.lineTimeoutMs} ms`), this.lineTimeoutMs);
    const onEnd = () => fail('the client ended before its CONNECT line');
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0 ? buffered.length >= CONNECT_LINE_MAX : newline + 1 > CONNECT_LINE_MAX) {
        fail(`no CONNECT line within ${CONNECT_LINE_MAX} bytes`);
        return;
      }
      if (newline < 0) return;
      cleanup();
      socket.pause();
      const line = buffered.subarray(0, newline).toString('latin1');
      const rest = buffered.subarray(newline + 1);
      const port = parseConnectLine(line);
      if (port === undefined) {
        fail(`bad CONNECT line ${JSON.stringify(line.slice(0, CONNECT_LINE_MAX))}`);
        return;
      }
      this.device.connect(port, this.connectTimeoutMs === undefined ? {} : { timeoutMs: this.connectTimeoutMs }).then(
        (connection) => {
          if (this.closed || socket.destroyed) {
            connection.destroy();
            return;
          }
          socket.write(`OK ${connection.localPort}\n`);
          this.pipe(socket, connection, rest);
        },
        (error: Error) => {
          this.log.warn(`vsock bridge ${this.socketPath}: CONNECT ${port}: ${error.message}; client disconnected`);
          socket.destroy();
        },
      );
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
  }

  /** A guest connection to host port P: forward it to `${socketPath}_P` if someone listens there. */
  private forwardGuest(connection: VsockConnection): Promise<boolean> | boolean {
    if (this.closed) return false;
    const path = `${this.socketPath}_${connection.localPort}`;
    return new Promise<boolean>((resolve) => {
      const socket = createConnection({ path, allowHalfOpen: true });
      this.track(socket);
      const onError = (error: Error) => {
        this.log.warn(`vsock bridge: guest port ${connection.remotePort} -> ${path}: ${error.message}; refused`);
        socket.destroy();
        resolve(false);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        if (this.closed || connection.state === 'closed') {
          socket.destroy();
          resolve(false);
          return;
        }
        this.pipe(socket, connection, undefined);
        resolve(true);
      });
    });
  }

  /** Bytes both ways with backpressure; half-close both ways; an error on either side aborts both. */
  private pipe(socket: Socket, connection: VsockConnection, first: Uint8Array | undefined): void {
    const duplex = toDuplex(connection);
    socket.on('error', (error) => duplex.destroy(error));
    duplex.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (!duplex.destroyed) duplex.destroy();
    });
    duplex.on('close', () => {
      if (!socket.destroyed && !socket.writableEnded) socket.end();
    });
    if (first !== undefined && first.length > 0) duplex.write(first);
    socket.pipe(duplex);
    duplex.pipe(socket);
  }
}
