/**
 * Linux x86-64 signal numbers, as the agent reports them in EXIT and takes them in KILL. The guest's
 * numbering, not the host's: a client on another OS still names them the Linux way.
 */
const SIGNALS: readonly (readonly [string, number])[] = [
  ['SIGHUP', 1],
  ['SIGINT', 2],
  ['SIGQUIT', 3],
  ['SIGILL', 4],
  ['SIGTRAP', 5],
  ['SIGABRT', 6],
  ['SIGBUS', 7],
  ['SIGFPE', 8],
  ['SIGKILL', 9],
  ['SIGUSR1', 10],
  ['SIGSEGV', 11],
  ['SIGUSR2', 12],
  ['SIGPIPE', 13],
  ['SIGALRM', 14],
  ['SIGTERM', 15],
  ['SIGSTKFLT', 16],
  ['SIGCHLD', 17],
  ['SIGCONT', 18],
  ['SIGSTOP', 19],
  ['SIGTSTP', 20],
  ['SIGTTIN', 21],
  ['SIGTTOU', 22],
  ['SIGURG', 23],
  ['SIGXCPU', 24],
  ['SIGXFSZ', 25],
  ['SIGVTALRM', 26],
  ['SIGPROF', 27],
  ['SIGWINCH', 28],
  ['SIGIO', 29],
  ['SIGPWR', 30],
  ['SIGSYS', 31],
];

const ALIASES: Readonly<Record<string, number>> = { SIGIOT: 6, SIGPOLL: 29, SIGCLD: 17 };

/** The kernel's first real-time signal (glibc keeps 32 and 33 for itself; its SIGRTMIN is 34). */
const KERNEL_SIGRTMIN = 32;
const SIGRTMAX = 64;

const BY_NUMBER = new Map(SIGNALS.map(([name, n]) => [n, name]));
const BY_NAME = new Map<string, number>([...SIGNALS, ...Object.entries(ALIASES)]);

/** `SIGTERM` for 15; real-time signals as `SIGRTMIN+n` (glibc's SIGRTMIN, 34); `SIG32`/`SIG33` for glibc's own. */
export function signalName(signal: number): string {
  const name = BY_NUMBER.get(signal);
  if (name !== undefined) return name;
  if (signal === 32 || signal === 33) return `SIG${signal}`;
  if (signal >= 34 && signal <= SIGRTMAX) return `SIGRTMIN+${signal - 34}`;
  return `SIG${signal}`;
}

/**
 * The number of a signal given by name (`SIGTERM`, `TERM`, `SIGRTMIN+2`, `SIGRTMAX`) or number (1..64).
 * Throws TypeError for anything else.
 */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 1 && signal <= SIGRTMAX) return signal;
    throw new TypeError(`signal ${signal} is not in 1..${SIGRTMAX}`);
  }
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  const known = BY_NAME.get(name);
  if (known !== undefined) return known;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? 34 : SIGRTMAX;
    const offset = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === '-' ? -1 : 1);
    const n = base + offset;
    if (n >= 34 && n <= SIGRTMAX) return n;
  }
  const numbered = /^SIG(\d+)$/.exec(name);
  if (numbered && Number(numbered[1]) > KERNEL_SIGRTMIN - 1 && Number(numbered[1]) <= SIGRTMAX) return Number(numbered[1]);
  throw new TypeError(`unknown signal ${JSON.stringify(signal)}`);
}
