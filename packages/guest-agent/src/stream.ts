/**
 * The byte stream a client talks over: the shape of `@hype/virtio-vsock`'s `VsockConnection`, so a VM can
 * hand the client `() => vsock.connect(1024)`; `@hype/guest-agent/node` adapts a `net.Socket` (Unix
 * socket) to it.
 */
export interface AgentStream {
  /** Queue bytes for the agent. False once the stream's buffer is full: wait for `onDrain`. */
  write(bytes: Uint8Array): boolean;
  /** Half-close: the client sends no more. */
  end(): void;
  /** Abort the connection now (a reset). */
  destroy(error?: Error): void;
  /** Bytes from the agent, in order. */
  onData(callback: (bytes: Uint8Array) => void): unknown;
  /** The agent shut down its sending side. */
  onEnd(callback: () => void): unknown;
  /** The stream takes writes again after `write()` returned false. */
  onDrain(callback: () => void): unknown;
  /** The connection is gone: `error` undefined after a clean close. */
  onClose(callback: (error?: Error) => void): unknown;
  /**
   * Stop / restart delivering data (optional). With them, a `spawn()` whose output nobody reads stops
   * reading the connection at its high-water mark, so the agent and then the command wait; without them the
   * client buffers what arrives.
   */
  pause?(): void;
  resume?(): void;
}

/** Opens a new connection to the agent (one per request). Its rejection becomes AgentError `no-agent`. */
export type AgentConnector = () => Promise<AgentStream>;
