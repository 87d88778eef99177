import { describe, expect, it } from 'vitest';
import { KvmMpState } from '@hype/kvm';
import { HaltWatch, threadState, type ProbedVcpu } from '../src/machine/halt-watch.js';

const KVM_MP_STATE_HALTED = KvmMpState.HALTED;

class FakeVcpu implements ProbedVcpu {
  threadId = 1000;
  probes = 0;
  probeResult: { count: number; mpState: number; rflags: number; errno: number } | undefined;
  constructor(
    public state: string,
    public mpState: number,
    public rflags: number,
  ) {}
  probe(): void {
    this.probes++;
    this.probeResult = { count: this.probes, mpState: this.mpState, rflags: this.rflags, errno: 0 };
  }
}

function watch(vcpus: FakeVcpu[]) {
  let halted = 0;
  const states = new Map(vcpus.map((v, i) => [(v.threadId = 1000 + i), v]));
  const w = new HaltWatch(vcpus, () => halted++, { readThreadState: (tid) => states.get(tid)?.state });
  return { w, halted: () => halted };
}

describe('HaltWatch', () => {
  it('ends the VM after two rounds that find every vCPU halted with IF clear', () => {
    const vcpus = [new FakeVcpu('S', KVM_MP_STATE_HALTED, 0x2), new FakeVcpu('S', KVM_MP_STATE_HALTED, 0x46)];
    const { w, halted } = watch(vcpus);
    w.tick(); // probes
    w.tick(); // round 1
    expect(halted()).toBe(0);
    w.tick(); // round 2
    expect(halted()).toBe(1);
  });

  it('does not probe while any vCPU thread is running guest code, and an idle guest (IF set) never ends', () => {
    const running = [new FakeVcpu('R', KVM_MP_STATE_HALTED, 0), new FakeVcpu('S', KVM_MP_STATE_HALTED, 0)];
    const a = watch(running);
    for (let i = 0; i < 5; i++) a.w.tick();
    expect(running.map((v) => v.probes)).toEqual([0, 0]);
    expect(a.halted()).toBe(0);

    const idle = [new FakeVcpu('S', KVM_MP_STATE_HALTED, 0x202), new FakeVcpu('S', KVM_MP_STATE_HALTED, 0)];
    const b = watch(idle);
    for (let i = 0; i < 5; i++) b.w.tick();
    expect(b.halted()).toBe(0);
  });

  it('starts over when a vCPU wakes up between rounds', () => {
    const vcpus = [new FakeVcpu('S', KVM_MP_STATE_HALTED, 0)];
    const { w, halted } = watch(vcpus);
    w.tick();
    w.tick();
    vcpus[0]!.state = 'R';
    w.tick();
    vcpus[0]!.state = 'S';
    w.tick();
    w.tick();
    expect(halted()).toBe(0);
    w.tick();
    expect(halted()).toBe(1);
  });

  it("reads this process's thread states from /proc", () => {
    expect(threadState(process.pid)).toMatch(/^[RS]$/);
    expect(threadState(2 ** 30)).toBeUndefined();
  });
});
