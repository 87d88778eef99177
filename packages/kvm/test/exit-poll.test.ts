// The exit poll's settings and caps (the native wait is tested in vcpu-run.test.ts and guests.test.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_EXIT_POLL_BUDGET_NS, PollGovernor, resolveExitPoll, shouldPollAgain } from '../src/exit-poll.js';

describe('resolveExitPoll', () => {
  it('takes the options first, then HYPE_EXIT_POLL, then the default', () => {
    expect(resolveExitPoll({}, {}, 2)).toEqual({ budgetNs: DEFAULT_EXIT_POLL_BUDGET_NS, spinNs: undefined, maxExits: 64, maxMs: 1 });
    expect(DEFAULT_EXIT_POLL_BUDGET_NS).toBe(1_000_000); // on by default, a cap (see its comment for the measurements)
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '0' }, 2).budgetNs).toBe(0);
    expect(resolveExitPoll({}, {}, 1).budgetNs).toBe(0);
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '50000' }, 1).budgetNs).toBe(0); // never on one CPU
    expect(resolveExitPoll({ budgetNs: 50_000 }, {}, 1).budgetNs).toBe(0);
    expect(resolveExitPoll({}, { HYPE_EXIT_POLL: '150000' }, 2).budgetNs).toBe(150_000);
    expect(resolveExitPoll({ budgetNs: 0 }, { HYPE_EXIT_POLL: '150000' }, 2).budgetNs).toBe(0);
    expect(resolveExitPoll({ budgetNs: 5000, spinNs: 100, maxExits: 3, maxMs: 0.5 }, {})).toEqual({
      budgetNs: 5000, spinNs: 100, maxExits: 3, maxMs: 0.5,
    });
  });

  it('is on by default only where the host has a CPU for the JS thread beside the VM\'s vCPUs', () => {
    expect(resolveExitPoll({ vcpus: 1 }, {}, 2).budgetNs).toBe(DEFAULT_EXIT_POLL_BUDGET_NS);
    expect(resolveExitPoll({ vcpus: 2 }, {}, 2).budgetNs).toBe(0);
    expect(resolveExitPoll({ vcpus: 3 }, {}, 4).budgetNs).toBe(DEFAULT_EXIT_POLL_BUDGET_NS);
    expect(resolveExitPoll({ vcpus: 2 }, { HYPE_EXIT_POLL: '50000' }, 2).budgetNs).toBe(50_000); // asked for
    expect(() => resolveExitPoll({ vcpus: -1 }, {}, 2)).toThrow('vcpus -1');
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
  /** A governor whose hand-overs have cost half of `ceilingNs`, so that is its ceiling. */
  const withCeiling = (ceilingNs: number) => {
    const governor = new PollGovernor(1_000_000);
    governor.noteDelivery(ceilingNs / 2);
    expect(governor.ceilingNs).toBe(ceilingNs);
    return governor;
  };

  it('sets its ceiling to twice what handing an exit to JS costs, within 20 µs and its maximum', () => {
    const governor = new PollGovernor(500_000);
    expect(governor.ceilingNs).toBe(0); // nothing seen: no polling
    governor.learn(1, 1000);
    expect(governor.budgetAfter(1)).toBe(0);
    governor.noteDelivery(20_000);
    expect(governor.ceilingNs).toBe(40_000);
    governor.noteDelivery(180_000); // a moving average: an eighth of the way
    expect(governor.ceilingNs).toBe(80_000);
    for (let i = 0; i < 100; i++) governor.noteDelivery(2000);
    expect(governor.ceilingNs).toBe(20_000); // the floor
    for (let i = 0; i < 100; i++) governor.noteDelivery(400_000); // under emulation
    expect(governor.ceilingNs).toBe(500_000); // the maximum (HYPE_EXIT_POLL)
    for (let i = 0; i < 100; i++) governor.noteDelivery(50_000_000); // a busy JS thread: samples count as 1 ms at most
    expect(governor.ceilingNs).toBe(500_000);
  });

  it('polls after a site only once it has seen the next exit come soon, for about twice that long', () => {
    const governor = withCeiling(100_000);
    expect(governor.budgetAfter(7)).toBe(0); // unknown
    governor.learn(7, 3000);
    expect(governor.budgetAfter(7)).toBe(8000); // 2 x 3 µs + 2 µs
    governor.learn(7, 1000);
    expect(governor.budgetAfter(7)).toBe(7000); // the average moved a quarter of the way
    for (let i = 0; i < 50; i++) governor.learn(7, 100);
    expect(governor.budgetAfter(7)).toBe(5000); // the floor
    for (let i = 0; i < 50; i++) governor.learn(8, 45_000);
    expect(governor.budgetAfter(8)).toBe(92_000);
    for (let i = 0; i < 50; i++) governor.learn(9, 49_000);
    expect(governor.budgetAfter(9)).toBe(100_000); // the ceiling
    expect(governor.budgetAfter(10)).toBe(0);
  });

  it('does not poll after a site whose next exit comes late, and stops when a site\'s next exits turn late', () => {
    const governor = withCeiling(100_000);
    governor.learn(1, 60_000); // more than half the ceiling
    expect(governor.budgetAfter(1)).toBe(0);
    for (let i = 0; i < 20; i++) governor.learn(2, 2000);
    const polled = [];
    for (let i = 0; i < 6; i++) {
      governor.learn(2, 5_000_000);
      polled.push(governor.budgetAfter(2) > 0);
    }
    expect(polled).toEqual([true, false, false, false, false, false]); // fewer than 3 in 4 came in time
    for (let i = 0; i < 4; i++) governor.learn(2, 2000);
    expect(governor.budgetAfter(2)).toBe(0);
    governor.learn(2, 2000);
    expect(governor.budgetAfter(2)).toBeGreaterThan(0); // back once they come soon again, 3 in 4
  });

  it('counts a next exit that came after the budget as a miss, and moves the budget toward the runs seen', () => {
    const governor = withCeiling(100_000);
    for (let i = 0; i < 10; i++) governor.learn(3, 1000);
    expect(governor.budgetAfter(3)).toBe(5000);
    const budgets = [];
    for (let i = 0; i < 8; i++) {
      governor.learn(3, 40_000); // now the guest takes 40 µs: beyond the 5 µs budget at first
      budgets.push(governor.budgetAfter(3));
    }
    expect(budgets[0]).toBeGreaterThan(0);
    expect(budgets[1]).toBe(0); // two misses in a row: polling pauses
    expect(budgets.at(-1)).toBeGreaterThan(40_000); // and comes back with a budget that catches 40 µs
  });

  it('tells an interrupt-status read (acknowledged at once) from the acknowledge (the next interrupt is far)', () => {
    const governor = withCeiling(100_000);
    const [status, ack] = [6 + 64 * (2 * 0xd0001060), 6 + 64 * (2 * 0xd0001064 + 1)];
    for (let i = 0; i < 10; i++) {
      governor.learn(status, 1500);
      governor.learn(ack, 800_000);
    }
    expect(governor.budgetAfter(status)).toBe(5000);
    expect(governor.budgetAfter(ack)).toBe(0);
  });

  it('never polls with a ceiling of 0, and keeps a bounded history', () => {
    const off = new PollGovernor(0);
    off.noteDelivery(10_000);
    off.learn(1, 0);
    expect(off.budgetAfter(1)).toBe(0);
    const governor = withCeiling(100_000);
    for (let site = 0; site < 5000; site++) governor.learn(site, 1000);
    expect(governor.budgetAfter(4999)).toBeGreaterThan(0);
    expect(governor.budgetAfter(0)).toBe(0); // forgotten when the history started over
  });
});
