import type { VmLogger } from './ports.js';
import { UsageError } from './usage-error.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** $HYPE_LOG: how much of what @hype/vm reports reaches stderr (default: warnings and errors). */
export function logLevelFromEnv(env: Record<string, string | undefined>): LogLevel {
  const value = env.HYPE_LOG;
  if (value === undefined || value === '') return 'warn';
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new UsageError(`HYPE_LOG=${value}: use one of ${LOG_LEVELS.join(', ')}`);
}

/**
 * A logger that prints `hype: <level>: message` lines at or above `level`. While the terminal is in raw
 * mode (no output processing), line ends must be written as CR LF.
 */
export function stderrLogger(write: (text: string) => void, level: LogLevel, isRaw: () => boolean): VmLogger {
  const threshold = LOG_LEVELS.indexOf(level);
  const at = (messageLevel: Exclude<LogLevel, 'silent'>) => (message: string) => {
    if (LOG_LEVELS.indexOf(messageLevel) < threshold) return;
    const eol = isRaw() ? '\r\n' : '\n';
    const label = messageLevel === 'warn' ? 'warning' : messageLevel;
    write(`hype: ${label}: ${message.replace(/\r?\n/g, eol)}${eol}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
