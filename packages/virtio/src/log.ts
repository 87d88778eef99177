/** Where guest errors and device problems are reported. Injected; the VM decides where it goes. */
export interface VirtioLogger {
  /** Something the guest did wrong, or a device/back-end problem. One line, with context. */
  warn(message: string): void;
  /** Optional chatter (feature negotiation, resets). */
  debug?(message: string): void;
}

/** A logger that drops everything (the default when none is injected). */
export const silentLogger: VirtioLogger = { warn() {} };

/**
 * Wraps a logger so a guest that hammers a bad register or ring cannot flood the host's log: at most
 * `burst` warnings pass, then one in every `every` (with a count of how many were suppressed).
 */
export function rateLimitedLogger(inner: VirtioLogger, burst = 100, every = 1000): VirtioLogger {
  let count = 0;
  let suppressed = 0;
  return {
    warn(message) {
      count++;
      if (count <= burst || count % every === 0) {
        inner.warn(suppressed > 0 ? `${message} (${suppressed} similar warnings suppressed)` : message);
        suppressed = 0;
      } else {
        suppressed++;
      }
    },
    debug: inner.debug?.bind(inner),
  };
}
