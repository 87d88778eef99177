// Host ports forwarded to a guest (passt's `-t`/`-u`, `hype run --publish`): plain data, Node-free, so a
// command line can check them without loading the backends.

/** A port forwarded from the host to the guest (`hype run --publish HOST:GUEST[/udp]`). */
export interface PortForward {
  readonly protocol: 'tcp' | 'udp';
  readonly hostPort: number;
  readonly guestPort: number;
  /** The host address to bind; default all of them. */
  readonly hostAddress?: string;
}

/** Two forwards bind the same host port: same protocol and port, and the same address or one on all addresses. */
export function sameHostPort(a: PortForward, b: PortForward): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostAddress === undefined || b.hostAddress === undefined || a.hostAddress === b.hostAddress);
}
