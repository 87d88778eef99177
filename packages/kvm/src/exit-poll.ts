import { availableParallelism } from 'node:os';

/**
 * Polling for the next exit: after an exit handler completes synchronously, the JS thread may wait a
 * short, bounded time (the native thread's resumeAndPoll()) for the vCPU's next exit and handle it inline,
 * skipping the event loop's wake-up and the ThreadSafeFunction dispatch. Caps keep timers, I/O and other
 * vCPUs' exits running: at most `maxExits` exits, or `maxMs` milliseconds, handled inline per event-loop turn.
 * A poll that times out is pure loss (the JS thread waited, then the exit took the slow path anyway), so
 * PollGovernor polls only after exits whose next exit has been coming soon (it learns that per exit site),
 * and waits about as long as that takes.
 */
export interface ExitPollOptions {
  /** The longest wait (ns) for the next exit after completing one; 0 turns polling off. At most 1 ms.
   * Each wait is shorter: about twice what the next exit took to come after this exit site before, within
   * twice what handing an exit to the JS thread costs on this host (PollGovernor). */
  budgetNs?: number;
  /** The busy part of each wait (ns; the rest sleeps on a futex). Default: all of it. */
  spinNs?: number;
  /** Exits handled inline per event-loop turn at most. Default 64. */
  maxExits?: number;
  /** Milliseconds of inline exits per event-loop turn at most. Default 1. */
  maxMs?: number;
  /** The VM's vCPU threads, for the default: polling is on only where the host has a CPU for the JS thread
   * beside them. Default 1. */
  vcpus?: number;
}

export interface ExitPoll {
  budgetNs: number;
  spinNs: number | undefined;
  maxExits: number;
  maxMs: number;
}

/**
 * On by default where the host has a CPU to spare for the JS thread (see resolveExitPoll), capped at 1 ms;
 * what PollGovernor waits is far shorter. Each exit handed to JS wakes the JS thread (on a virtualised
 * host an idle CPU halts and the wake-up is an interrupt its hypervisor forwards); polling skips that when
 * the guest exits again soon, as in a driver's read-then-acknowledge of an interrupt status, a PCI config
 * address-then-data pair, or a port loop. Measured with bench/handoff.mjs on a 2-core kvm_pvm host
 * (2026-12-08): exit round trip 17.3 µs without polling, 7.7 µs with it (the synchronous C loop: 6.9 µs).
 * Where exits come far apart (most of a boot) PollGovernor does not poll, so the CPU time is the same.
 */
export const DEFAULT_EXIT_POLL_BUDGET_NS = 1_000_000;
const MAX_BUDGET_NS = 1_000_000;

/**
 * The poll settings of a run: `options` first, then the environment variable HYPE_EXIT_POLL (`0`: off;
 * a number of ns up to 1 ms; anything else is refused), then the default: DEFAULT_EXIT_POLL_BUDGET_NS where
 * the host has more CPUs than the VM has vCPUs (`options.vcpus`), else off. Always off on a single CPU,
 * where the poller would spin on the CPU the vCPU thread needs to produce the exit.
 */
export function resolveExitPoll(
  options: ExitPollOptions = {},
  env: Record<string, string | undefined> = process.env,
  cpus: number = availableParallelism(),
): ExitPoll {
  const check = (name: string, value: number, max: number) => {
    if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`exit poll: ${name} ${value} must be an integer from 0 to ${max}`);
    return value;
  };
  const vcpus = options.vcpus === undefined ? 1 : check('vcpus', options.vcpus, 1 << 10);
  let budgetNs = options.budgetNs;
  if (budgetNs === undefined) {
    const fromEnv = env.HYPE_EXIT_POLL;
    if (fromEnv === undefined || fromEnv === '') budgetNs = cpus > vcpus ? DEFAULT_EXIT_POLL_BUDGET_NS : 0;
    else if (/^\d+$/.test(fromEnv) && Number(fromEnv) <= MAX_BUDGET_NS) budgetNs = Number(fromEnv);
    else throw new RangeError(`HYPE_EXIT_POLL=${fromEnv}: give the exit poll's budget in nanoseconds, 0 (off) to ${MAX_BUDGET_NS}`);
  }
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

/** What the governor knows of one exit site: how soon the next exit followed its completion, and whether a
 * poll with the budget of the time would have caught it. */
interface SiteHistory {
  /** Moving average of "the next exit came within the budget this site had then" (1) or not (0). */
  hits: number;
  /** Moving average of how long the next exit took, over the times it took at most half the ceiling (ns;
   * 0: never). */
  soonNs: number;
}

/**
 * Which exits to poll after, and for how long, learned per exit site (KvmRun.exitSite). With each exit the
 * vCPU thread reports how long it came after the previous exit was completed (resumeToExitNs: the vCPU
 * thread's own wake-up if it had slept, the guest's run), which is what a poll after the previous exit's
 * site would have waited, polled for or not; and with each exit that went through the event loop, what
 * that hand-over cost (deliveryNs: the JS thread's wake-up), which is what a poll saves.
 *
 * The ceiling follows the host: twice the usual hand-over (at least 20 µs, at most `maxNs`), so a site is
 * polled after only when its next exit usually comes sooner than the JS thread's wake-up would take: a
 * poll then costs less than it saves, also where the spinning takes CPU time the guest could have used
 * (in the nested rig, polls for exits that came later than that slowed a serial boot by ~5 %).
 * A site's budget is twice its usual wait plus 2 µs (waits of up to half the ceiling count), at least
 * 5 µs, at most the ceiling; it is polled after while the next exit has mostly (3 in 4, moving average)
 * come within that budget. An unknown site is not polled after until seen. So a driver's
 * interrupt-status read (the acknowledge follows at once) is polled after; the acknowledge (the next
 * interrupt comes much later), a timer's exits or a console write are not. Memory is bounded: past
 * MAX_SITES sites the history starts over.
 */
export class PollGovernor {
  readonly maxNs: number;
  readonly #sites = new Map<number, SiteHistory>();
  #deliveryNs = 0;

  constructor(maxNs: number) {
    this.maxNs = maxNs;
  }

  /** An exit reached the handler through the event loop `deliveryNs` after it happened. */
  noteDelivery(deliveryNs: number): void {
    if (this.maxNs === 0) return;
    const sample = Math.min(Math.max(deliveryNs, 1), MAX_BUDGET_NS);
    this.#deliveryNs = this.#deliveryNs === 0 ? sample : this.#deliveryNs + (sample - this.#deliveryNs) / 8;
  }

  /** The longest poll now (ns): twice the usual hand-over, within MIN_CEILING_NS and maxNs; 0 before any. */
  get ceilingNs(): number {
    if (this.maxNs === 0 || this.#deliveryNs === 0) return 0;
    return Math.round(Math.min(this.maxNs, Math.max(MIN_CEILING_NS, 2 * this.#deliveryNs)));
  }

  /** After completing an exit at `site`, the next exit came `waitNs` later. */
  learn(site: number, waitNs: number): void {
    const ceiling = this.ceilingNs;
    if (ceiling === 0) return;
    const soon = waitNs <= ceiling / 2;
    const known = this.#sites.get(site);
    if (known === undefined) {
      if (this.#sites.size >= MAX_SITES) this.#sites.clear();
      this.#sites.set(site, { hits: soon ? 1 : 0, soonNs: soon ? Math.max(waitNs, 1) : 0 });
      return;
    }
    const hit = known.soonNs > 0 && waitNs <= this.#budget(known, ceiling) ? 1 : 0;
    known.hits += (hit - known.hits) / 4;
    if (soon) known.soonNs = known.soonNs === 0 ? Math.max(waitNs, 1) : known.soonNs + (waitNs - known.soonNs) / 4;
  }

  /** How long to poll (ns) after completing an exit at `site`; 0: not at all. */
  budgetAfter(site: number): number {
    const known = this.#sites.get(site);
    const ceiling = this.ceilingNs;
    return known === undefined || known.hits < MIN_HIT_RATE || ceiling === 0 ? 0 : this.#budget(known, ceiling);
  }

  #budget(known: SiteHistory, ceiling: number): number {
    return Math.round(Math.min(ceiling, Math.max(MIN_BUDGET_NS, 2 * known.soonNs + 2000)));
  }
}

const MIN_BUDGET_NS = 5000;
const MIN_CEILING_NS = 20_000;
const MIN_HIT_RATE = 0.75;
const MAX_SITES = 1024;
