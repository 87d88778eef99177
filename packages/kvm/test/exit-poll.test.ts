// The exit poll's settings and caps (the native wait is tested in vcpu-run.test.ts and guests.test.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_EXIT_POLL_BUDGET_NS, PollGovernor, resolveExitPoll, shouldPollAgain } from '../src/exit-poll.js';

describe('resolveExitPoll', () => {
  it('takes the options first, then HYPE_EXIT_POLL, then the default', () => {
    expect(resolveExitPoll({}, {}, 2)).toEqual({ budgetNs: DEFAULT_EXIT_POLL_BUDGET_NS, spinNs: undefined, maxExits: 64, maxMs: 1 });
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '0' }).budgetNs).toBe(0);
    expect(DEFAULT_EXIT_POLL_BUDGET_NS).toBe(0); // off by default (see its comment for the measurements)
    expect(resolveExitPoll({}, {}, 1).budgetNs).toBe(0);
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '50000' }, 1).budgetNs).toBe(0); // never on one CPU
    expect(resolveExitPoll({ budgetNs: 50_000 }, {}, 1).budgetNs).toBe(0);
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '150000' }, 2).budgetNs).toBe(150_000);
    expect(resolveExitPoll({ budgetNs: 0 }, { HYPE_EXIT_POLL: '150000' }, 2).budgetNs).toBe(0);
    expect(resolveExitPoll({ budgetNs: 5000, spinNs: 100, maxExits: 3, maxMs: 0.5 }, {})).toEqual({
      budgetNs: 5000, spinNs: 100, maxExits: 3, maxMs: 0.5,
    });
  });

  it('refuses a HYPE_EXIT_POLL that is not a number of ns up to 1 ms, naming it; an empty one is the default', () => {
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '' }, 2).budgetNs).toBe(DEFAULT_EXIT_POLL_BUDGET_NS);
    for (const value of ['on', '-5', '1e5', '20us', '99999999']) {
      expect(() => resolveExitPoll({}, { HYPE_EXIT_POLL: value }, 2)).toThrow(`HYPE_EXIT_POLL=${value}: give the exit poll's budget in nanoseconds, 0 (off) to 1000000`);
    }
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '1000000' }, 2).budgetNs).toBe(1_000_000);
    expect(() => resolveExitPoll({ budgetNs: 5_000_000 }, {}, 2)).toThrow('budgetNs 5000000');
  });

  it('rejects options that are not whole numbers in range', () => {
    expect(() => resolveExitPoll({ budgetNs: -1 }, {})).toThrow(RangeError);
    expect(() => resolveExitPoll({ budgetNs: 1.5 }, {})).toThrow('budgetNs 1.5');
    expect(() => resolveExitPoll({ spinNs: 2_000_000 }, {})).toThrow('spinNs');
    expect(() => resolveExitPoll({ maxExits: -1 }, {})).toThrow('maxExits');
    expect(() => resolveExitPoll({ maxMs: Number.NaN }, {})).toThrow('maxMs');
  });
});

describe('shouldPollAgain', () => {
  const poll = resolveExitPoll({ budgetNs: 1000, maxExits: 3, maxMs: 2 }, {});

  it('polls until maxExits exits were handled inline', () => {
    expect([0, 1, 2, 3, 4].map((n) => shouldPollAgain(poll, n, 0, 0))).toEqual([true, true, true, false, false]);
  });

  it('stops once maxMs passed since the turn began', () => {
    expect(shouldPollAgain(poll, 0, 100, 101.9)).toBe(true);
    expect(shouldPollAgain(poll, 0, 100, 102)).toBe(false);
  });

  it('never polls with a budget of 0', () => {
    expect(shouldPollAgain({ ...poll, budgetNs: 0 }, 0, 0, 0)).toBe(false);
  });
});

describe('PollGovernor', () => {
  /** allows() over `n` exits, recording a miss for each poll allowed. */
  const missing = (governor: PollGovernor, n: number) =>
    Array.from({ length: n }, (): number => {
      const allowed = governor.allows();
      if (allowed) governor.record(false, governor.budgetNs);
      return allowed ? 1 : 0;
    });

  it('polls while polls hit, with a budget of about 4x their wait', () => {
    const governor = new PollGovernor(1_000_000);
    expect(governor.budgetNs).toBe(1_000_000);
    for (let i = 0; i < 100; i++) {
      expect(governor.allows()).toBe(true);
      governor.record(true, 20_000);
    }
    expect(governor.budgetNs).toBeGreaterThan(79_000);
    expect(governor.budgetNs).toBeLessThan(81_000);
    for (let i = 0; i < 100; i++) governor.record(true, 100);
    expect(governor.budgetNs).toBe(5000); // the floor
  });

  it('skips 1, 3, 7 ... exits after misses in a row, at most 63, and grows the budget back', () => {
    const governor = new PollGovernor(400_000);
    for (let i = 0; i < 50; i++) governor.record(true, 10_000);
    const small = governor.budgetNs;
    expect(missing(governor, 16).join('')).toBe('1010001000000010');
    expect(governor.budgetNs).toBeGreaterThan(small * 3);
    missing(governor, 300);
    expect(governor.budgetNs).toBe(400_000);
    const steady = missing(governor, 128);
    expect(steady.reduce((a, b) => a + b, 0)).toBe(2); // one poll per 64 exits
  });

  it('does not poll in a turn whose exit came long after the guest resumed', () => {
    const governor = new PollGovernor(100_000);
    governor.startTurn(5_000_000);
    expect(governor.allows()).toBe(false);
    governor.startTurn(150_000);
    expect(governor.allows()).toBe(true);
  });

  it('a hit ends the backoff', () => {
    const governor = new PollGovernor(100_000);
    missing(governor, 200);
    while (!governor.allows());
    governor.record(true, 1000);
    expect([governor.allows(), governor.allows()]).toEqual([true, true]);
  });
});
