import { EscapeFilter, ESCAPE_HELP } from './escape.js';

/** The process's stdin as far as the console needs it (a tty.ReadStream when interactive). */
export interface ConsoleInput {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  removeListener(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface ConsoleBridgeOptions {
  input: ConsoleInput;
  /** Where input for the guest goes. */
  toGuest(bytes: Uint8Array): void;
  /** Ctrl-A x was typed. */
  onQuit(): void;
  /** Messages for the user (Ctrl-A h). */
  writeMessage(text: string): void;
  /** Called with the restore function once raw mode is on, so the process can restore it on any exit. */
  registerRestore?(restore: () => void): () => void;
}

/**
 * Connects the terminal to the guest console. On a TTY: raw mode (Ctrl-C etc. reach the guest) and the
 * Ctrl-A escapes. On a pipe or file: bytes pass through unchanged, no escapes.
 */
export class ConsoleBridge {
  private readonly filter = new EscapeFilter();
  private readonly interactive: boolean;
  private rawMode = false;
  private unregisterRestore: (() => void) | undefined;
  private closed = false;
  private readonly onData = (chunk: Buffer | string) => this.handle(chunk);

  constructor(private readonly options: ConsoleBridgeOptions) {
    this.interactive = options.input.isTTY === true;
  }

  get isRaw(): boolean {
    return this.rawMode;
  }

  start(): void {
    const { input } = this.options;
    if (this.interactive && typeof input.setRawMode === 'function') {
      input.setRawMode(true);
      this.rawMode = true;
      this.unregisterRestore = this.options.registerRestore?.(() => this.restoreTerminal());
    }
    input.on('data', this.onData);
    input.resume();
  }

  /** Stops reading and restores the terminal. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.input.removeListener('data', this.onData);
    this.options.input.pause();
    this.restoreTerminal();
    this.unregisterRestore?.();
  }

  private restoreTerminal(): void {
    if (!this.rawMode) return;
    this.rawMode = false;
    this.options.input.setRawMode?.(false);
  }

  private handle(chunk: Buffer | string): void {
    if (this.closed) return;
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk);
    if (!this.interactive) {
      this.options.toGuest(bytes);
      return;
    }
    const { forward, actions } = this.filter.push(bytes);
    if (forward.length > 0) this.options.toGuest(forward);
    for (const action of actions) {
      if (action === 'help') this.options.writeMessage(`\r\n${ESCAPE_HELP}`);
      else this.options.onQuit();
    }
  }
}
