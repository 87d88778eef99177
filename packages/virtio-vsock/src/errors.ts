/**
 * Why a connection failed or ended abnormally, with a POSIX-like `code` a caller can switch on:
 *
 * | code | meaning |
 * |---|---|
 * | `ECONNREFUSED` | the guest answered a host `connect()` with RST (nothing listening on that port) |
 * | `ETIMEDOUT` | no RESPONSE to a host `connect()`, or the host did not accept a guest connection, in time |
 * | `ECONNRESET` | the guest reset an open connection, or the transport or the device was reset |
 * | `EPROTO` | the guest broke the protocol on this connection (credit overrun, data after its shutdown, bad packet); the host reset it |
 * | `ENOBUFS` | host writes beyond the hard limit of the send queue (the writer ignored `write() === false`) |
 * | `EPIPE` | a write on a connection that no longer takes writes (the Node adapter reports it) |
 * | `ENOTCONN` | `connect()` while the guest driver has not started the device (or after `close()`) |
 * | `EAGAIN` | `connect()` while the connection limit is reached |
 * | `ECONNABORTED` | the host closed a connection before it was established |
 */
export type VsockErrorCode = 'ECONNREFUSED' | 'ETIMEDOUT' | 'ECONNRESET' | 'EPROTO' | 'ENOBUFS' | 'EPIPE' | 'ENOTCONN' | 'EAGAIN' | 'ECONNABORTED';

export class VsockError extends Error {
  override readonly name = 'VsockError';
  constructor(
    readonly code: VsockErrorCode,
    message: string,
  ) {
    super(message);
  }
}
