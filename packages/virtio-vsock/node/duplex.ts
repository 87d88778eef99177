import { Duplex } from 'node:stream';
import type { VsockConnection } from '../src/connection.js';
import { VsockError } from '../src/errors.js';

export interface ToDuplexOptions {
  /** The Duplex's readable high-water mark (bytes); the connection pauses above it. Node's default otherwise. */
  readonly readableHighWaterMark?: number;
  /** The Duplex's writable high-water mark (bytes). Node's default otherwise. */
  readonly writableHighWaterMark?: number;
}

/**
 * A Node `stream.Duplex` over a vsock connection, with backpressure both ways: guest data is pushed
 * while the readable side wants more (the connection is paused otherwise, so the guest runs out of
 * credit), and a write completes only when the connection's send queue is below its high-water mark.
 *
 * Half-close: ending the writable side sends SHUTDOWN(SEND) after the queued bytes; the readable side
 * ends when the guest shuts down sending. Destroying the Duplex closes the connection (gracefully
 * without an error, with RST given one); a guest reset or a device reset destroys the Duplex with the
 * connection's `VsockError`. Call it before any data callback is registered on the connection, so no
 * byte is delivered elsewhere.
 */
export function toDuplex(connection: VsockConnection, options: ToDuplexOptions = {}): Duplex {
  /** Continues a write that waits for the connection's drain (or fails it when the connection closes). */
  let waitingWrite: ((error?: Error) => void) | undefined;
  let connectionClosed = false;
  let pushedEnd = false;
  // Below the high-water mark a slice always fits under the hard limit: a chunk of any size is fed to the
  // connection in slices, each after the previous drain, so no single write can exceed the limit.
  const slice = Math.max(1, Math.min(64 * 1024, connection.writableLimit - connection.writableHighWaterMark + 1));
  const epipe = () => new VsockError('EPIPE', `vsock ${connection.describe()}: write on a connection that no longer takes writes`);

  const duplex = new Duplex({
    allowHalfOpen: true,
    readableHighWaterMark: options.readableHighWaterMark,
    writableHighWaterMark: options.writableHighWaterMark,
    read() {
      connection.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      let offset = 0;
      const step = (error?: Error): void => {
        if (error !== undefined) {
          callback(error);
          return;
        }
        while (offset < chunk.length) {
          if (connectionClosed || !connection.writable) {
            callback(epipe());
            return;
          }
          const piece = chunk.subarray(offset, offset + slice);
          offset += piece.length;
          if (!connection.write(piece)) {
            if (connection.state === 'closed') {
              callback(epipe());
              return;
            }
            waitingWrite = step;
            return;
          }
        }
        callback();
      };
      step();
    },
    final(callback) {
      connection.end();
      callback();
    },
    destroy(error, callback) {
      if (!connectionClosed) {
        if (error) connection.destroy(error);
        else connection.close();
      }
      waitingWrite = undefined;
      callback(error);
    },
  });

  connection.onData((bytes) => {
    if (!duplex.push(bytes)) connection.pause();
  });
  connection.onEnd(() => {
    pushedEnd = true;
    duplex.push(null);
  });
  connection.onDrain(() => {
    const next = waitingWrite;
    waitingWrite = undefined;
    next?.();
  });
  connection.onClose((error) => {
    connectionClosed = true;
    const next = waitingWrite;
    waitingWrite = undefined;
    if (error !== undefined) {
      next?.(error);
      duplex.destroy(error);
      return;
    }
    // A clean close: end both sides so buffered readable data is still consumed before 'close'.
    next?.(epipe());
    if (!pushedEnd) {
      pushedEnd = true;
      duplex.push(null);
    }
    if (!duplex.writableEnded) duplex.end();
  });
  return duplex;
}
