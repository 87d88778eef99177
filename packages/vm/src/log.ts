/** Where @hype/vm reports what it does. The CLI decides what reaches the terminal. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * Logs each distinct key once, so a guest hammering an absent port cannot flood the log. The set of
 * remembered keys is bounded: past `maxKeys` one final notice is logged and the rest stay quiet.
 */
export class OnceLogger {
  private readonly seen = new Set<string>();
  private saturated = false;

  constructor(
    private readonly log: (message: string) => void,
    private readonly maxKeys = 256,
  ) {}

  log1(key: string, message: () => string): void {
    if (this.seen.has(key) || this.saturated) return;
    if (this.seen.size >= this.maxKeys) {
      this.saturated = true;
      this.log(`further distinct messages of this kind are not logged (limit ${this.maxKeys})`);
      return;
    }
    this.seen.add(key);
    this.log(message());
  }
}
