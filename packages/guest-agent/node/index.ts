/**
 * Node side of @hype/guest-agent: an AgentStream over a `net.Socket`, and a connector for an agent
 * listening on a Unix socket (`hype-agent --unix PATH`: tests on the host, or a socket a VMM exposes).
 */
import { createConnection, type Socket } from 'node:net';
import type { AgentStream } from '../src/stream.js';

/**
 * Adapts a connected `net.Socket` to AgentStream (backpressure both ways: `pause()` stops reading the
 * socket). The socket's errors are reported through `onClose(error)`, never thrown.
 */
export function fromSocket(socket: Socket): AgentStream {
  let lastError: Error | undefined;
  socket.on('error', (error) => {
    lastError = error;
  });
  return {
    write: (bytes) => !socket.destroyed && socket.write(bytes),
    end: () => {
      if (!socket.destroyed) socket.end();
    },
    destroy: (error) => {
      socket.destroy(error);
    },
    onData: (callback) => {
      socket.on('data', callback);
      return () => socket.off('data', callback);
    },
    onEnd: (callback) => {
      socket.on('end', callback);
      return () => socket.off('end', callback);
    },
    onDrain: (callback) => {
      socket.on('drain', callback);
      return () => socket.off('drain', callback);
    },
    onClose: (callback) => {
      const listener = () => callback(lastError);
      socket.on('close', listener);
      return () => socket.off('close', listener);
    },
    pause: () => {
      socket.pause();
    },
    resume: () => {
      socket.resume();
    },
  };
}

export interface ConnectUnixOptions {
  /** Give up connecting after this many ms (default 5000). */
  readonly timeoutMs?: number;
}

/**
 * Connects to an agent's Unix socket: `new AgentClient({ connect: () => connectUnix(path) })`. Rejects
 * with an Error naming the path and the `code` (ENOENT, ECONNREFUSED, ETIMEDOUT) when nothing listens
 * there or the connect times out; AgentClient reports that as AgentError `no-agent`. (A plain Error, so
 * that this entry needs no copy of the AgentError class in the CommonJS build.)
 */
export function connectUnix(path: string, options: ConnectUnixOptions = {}): Promise<AgentStream> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connecting to ${path} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`cannot connect to ${path}: ${error.code ?? error.message}`, { cause: error }), { code: error.code }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(fromSocket(socket));
    });
  });
}
