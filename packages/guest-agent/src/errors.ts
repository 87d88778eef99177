/**
 * What went wrong talking to the guest agent, as a `kind` a caller can switch on:
 *
 * | kind | meaning |
 * |---|---|
 * | `no-agent` | the connection could not be opened (nothing listens on the port, no vsock device, the VM is not running) |
 * | `connection-reset` | the connection closed or was reset before the request's final frame |
 * | `timeout` | the request took longer than its `timeoutMs` (a command is killed first), or HELLO_ACK did not come |
 * | `protocol` | a side broke the protocol (a malformed frame from the agent, or the agent's ERROR `EPROTO`) |
 * | `remote` | the agent reported an error: `errno`, `code` (`ENOENT`), `op` (`exec`, `open`, ...) say which |
 * | `output-limit` | a command wrote more than `maxOutputBytes`, or a file exceeded `maxBytes` (the agent's `EFBIG` is `remote`) |
 */
export type AgentErrorKind = 'no-agent' | 'connection-reset' | 'timeout' | 'protocol' | 'remote' | 'output-limit';

export interface AgentErrorDetails {
  /** The guest's errno value (`remote`, and `protocol` errors the agent reported). */
  readonly errno?: number;
  /** The errno's name, e.g. `ENOENT`. */
  readonly code?: string;
  /** What failed in the guest: `exec`, `chdir`, `open`, `read`, `write`, `protocol`, ... (PROTOCOL.md, ERROR). */
  readonly op?: string;
  readonly cause?: unknown;
}

export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly errno: number | undefined;
  readonly code: string | undefined;
  readonly op: string | undefined;
  /** `exec()` failures after the command started: the output read until then. */
  partial: PartialOutput | undefined;

  constructor(
    readonly kind: AgentErrorKind,
    message: string,
    details: AgentErrorDetails = {},
  ) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.errno = details.errno;
    this.code = details.code;
    this.op = details.op;
  }
}

/** An `exec()` that failed after the command started (timeout, output limit, reset) keeps what it had read. */
export interface PartialOutput {
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}
