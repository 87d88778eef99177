import { availableParallelism } from 'node:os';

/**
 * Polling for the next exit: after an exit handler completes synchronously, the JS thread may wait a
 * short, bounded time (the native thread's resumeAndPoll()) for the vCPU's next exit and handle it inline,
 * skipping the event loop's wake-up and the ThreadSafeFunction dispatch. Caps keep timers, I/O and other
 * vCPUs' exits running: at most `maxExits` exits, or `maxMs` milliseconds, handled inline per event-loop turn.
 * A poll that times out is pure loss (the JS thread waited, then the exit took the slow path anyway), so
 * PollGovernor skips polling after misses (a guest that exits rarely costs about one wait per 64 exits)
 * and shortens the wait to what this guest on this host needs.
 */
export interface ExitPollOptions {
  /** The longest wait (ns) for the next exit after completing one; 0 turns polling off. At most 1 ms.
   * Each wait is shorter once the run has seen how fast the guest's exits come (PollGovernor). */
  budgetNs?: number;
  /** The busy part of each wait (ns; the rest sleeps on a futex). Default: all of it. */
  spinNs?: number;
  /** Exits handled inline per event-loop turn at most. Default 64. */
  maxExits?: number;
  /** Milliseconds of inline exits per event-loop turn at most. Default 1. */
  maxMs?: number;
}

export interface ExitPoll {
  budgetNs: number;
  spinNs: number | undefined;
  maxExits: number;
  maxMs: number;
}

/** Off by default. Measured in the nested rig (exits ~10x slower than on a host) with a 1 ms ceiling: the
 * exit round trip of bench/handoff.mjs fell from ~8.5x to ~2x the synchronous C loop, but a boot (whose
 * few hundred JS exits are sparse: most are answered on the vCPU thread or posted) gained nothing and took
 * ~0.2 s longer at the paired median of 17 interleaved A/B pairs (noise +-1 s), with more CPU time. Turn it
 * on for exit-heavy guests: HYPE_EXIT_POLL=1000000 or StartOptions.exitPoll. */
export const DEFAULT_EXIT_POLL_BUDGET_NS = 0;

/** The ceiling that measured best in the rig (what HYPE_EXIT_POLL=1000000 gives). */
export const RECOMMENDED_EXIT_POLL_BUDGET_NS = 1_000_000;
const MAX_BUDGET_NS = 1_000_000;

/**
 * The poll settings of a run: `options` first, then the environment variable HYPE_EXIT_POLL (`0`: off;
 * a number of ns up to 1 ms; anything else is refused), then the default (off). Always off on a single
 * CPU, where the poller would spin on the CPU the vCPU thread needs to produce the exit.
 */
export function resolveExitPoll(
  options: ExitPollOptions = {},
  env: Record<string, string | undefined> = process.env,
  cpus: number = availableParallelism(),
): ExitPoll {
  let budgetNs = options.budgetNs;
  if (budgetNs === undefined) {
    const fromEnv = env.HYPE_EXIT_POLL;
    if (fromEnv === undefined || fromEnv === '') budgetNs = DEFAULT_EXIT_POLL_BUDGET_NS;
    else if (/^\d+$/.test(fromEnv) && Number(fromEnv) <= MAX_BUDGET_NS) budgetNs = Number(fromEnv);
    else throw new RangeError(`HYPE_EXIT_POLL=${fromEnv}: give the exit poll's budget in nanoseconds, 0 (off) to ${MAX_BUDGET_NS}`);
  }
  const check = (name: string, value: number, max: number) => {
    if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`exit poll: ${name} ${value} must be an integer from 0 to ${max}`);
    return value;
  };
  check('budgetNs', budgetNs, MAX_BUDGET_NS);
  return {
    // Never on one CPU: the poller would spin on the CPU the vCPU thread needs to produce the exit.
    budgetNs: cpus > 1 ? budgetNs : 0,
    spinNs: options.spinNs === undefined ? undefined : check('spinNs', options.spinNs, MAX_BUDGET_NS),
    maxExits: check('maxExits', options.maxExits ?? 64, 1 << 20),
    maxMs: checkMs(options.maxMs ?? 1),
  };
}

function checkMs(value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`exit poll: maxMs ${value} must be a finite number >= 0`);
  return value;
}

/** Whether to poll for one more exit after `inlineExits` handled since `startedMs` (performance.now()). */
export function shouldPollAgain(poll: ExitPoll, inlineExits: number, startedMs: number, nowMs: number): boolean {
  return poll.budgetNs > 0 && inlineExits < poll.maxExits && nowMs - startedMs < poll.maxMs;
}

/**
 * Per-run poll state: whether this event-loop turn polls at all (only when the exit that started it came
 * within twice the ceiling of the guest's resumption: a guest that runs on between exits is never polled
 * for), the backoff after misses (after `n` empty polls in a row the next 2^n - 1 exits, at most 63, are
 * not polled for) and the budget, which adapts to the guest: 4x the mean time polls took to
 * get their exit (so ~4x an exit's round trip on this host), growing by half after each miss, between
 * MIN_BUDGET_NS and the configured budget (the starting point).
 */
export class PollGovernor {
  readonly maxNs: number;
  #meanNs: number;
  #misses = 0;
  #skip = 0;
  #turn = true;

  constructor(maxNs: number) {
    this.maxNs = maxNs;
    this.#meanNs = maxNs / 4;
  }

  /** The budget for the next poll (ns). */
  get budgetNs(): number {
    return Math.round(Math.min(this.maxNs, Math.max(MIN_BUDGET_NS, this.#meanNs * 4)));
  }

  /** An exit arrived through the event loop, `gapNs` after the previous one was completed. */
  startTurn(gapNs: number): void {
    this.#turn = gapNs <= 2 * this.maxNs;
  }

  /** Whether to poll after the exit being completed now. */
  allows(): boolean {
    if (!this.#turn) return false;
    if (this.#skip === 0) return true;
    this.#skip--;
    return false;
  }

  /** The outcome of a poll: whether it got the next exit, and how long it waited (ns). */
  record(hit: boolean, waitedNs: number): void {
    if (hit) {
      this.#misses = 0;
      this.#meanNs += (waitedNs - this.#meanNs) / 8;
      return;
    }
    this.#meanNs = Math.min(this.maxNs / 4, this.#meanNs * 1.5);
    this.#misses = Math.min(this.#misses + 1, 6);
    this.#skip = (1 << this.#misses) - 1;
  }
}

const MIN_BUDGET_NS = 5000;
