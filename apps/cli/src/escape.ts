/** Ctrl-A, the escape prefix (as in QEMU's `-nographic` and screen). */
export const ESCAPE_BYTE = 0x01;

export type EscapeAction = 'quit' | 'help';

export interface EscapeResult {
  /** Bytes for the guest, in order. */
  forward: Uint8Array;
  /** Commands typed after Ctrl-A, in order. After `quit` nothing more is forwarded. */
  actions: EscapeAction[];
}

export const ESCAPE_HELP = `Ctrl-A x  quit hype (stop the VM)\r
Ctrl-A Ctrl-A  send Ctrl-A to the guest\r
Ctrl-A h  show this help\r
`;

/**
 * Filters terminal input for the console escape sequences: Ctrl-A x quits, Ctrl-A Ctrl-A sends one
 * Ctrl-A, Ctrl-A h (or ?) prints help; Ctrl-A followed by anything else sends both bytes unchanged.
 * Keeps its state across chunks, so a Ctrl-A at the end of one read pairs with the next read.
 */
export class EscapeFilter {
  private afterEscape = false;
  private quit = false;

  push(chunk: Uint8Array): EscapeResult {
    const forward: number[] = [];
    const actions: EscapeAction[] = [];
    for (const byte of chunk) {
      if (this.quit) break;
      if (!this.afterEscape) {
        if (byte === ESCAPE_BYTE) this.afterEscape = true;
        else forward.push(byte);
        continue;
      }
      this.afterEscape = false;
      if (byte === ESCAPE_BYTE) forward.push(ESCAPE_BYTE);
      else if (byte === 0x78 /* x */ || byte === 0x58 /* X */) {
        this.quit = true;
        actions.push('quit');
      } else if (byte === 0x68 /* h */ || byte === 0x3f /* ? */) actions.push('help');
      else forward.push(ESCAPE_BYTE, byte);
    }
    return { forward: Uint8Array.from(forward), actions };
  }

  get quitRequested(): boolean {
    return this.quit;
  }
}
