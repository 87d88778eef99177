import { describe, expect, it } from 'vitest';
import { kvmIsPvm } from '../../bench/lib/hype.mjs';
import { ALL_BENCHMARKS, KVM_BENCHMARKS, planBench } from '../bench-plan.mjs';

describe('planBench: where pnpm bench runs each benchmark', () => {
  it('everything on the host where /dev/kvm is ordinary KVM', () => {
    expect(planBench(ALL_BENCHMARKS, { kvm: true, pvm: false, rig: true })).toEqual({ onHost: ALL_BENCHMARKS, inRig: [] });
  });

  it('the KVM benchmarks in the rig where /dev/kvm is absent', () => {
    const plan = planBench(ALL_BENCHMARKS, { kvm: false, pvm: false, rig: true });
    expect(plan.inRig).toEqual(KVM_BENCHMARKS);
    expect(plan.onHost).toEqual(['blk', 'hostile']);
  });

  it('only cfloor in the rig on a kvm_pvm host; the rest measure that KVM', () => {
    expect(planBench(['handoff', 'cfloor', 'boot'], { kvm: true, pvm: true, rig: true })).toEqual({ onHost: ['handoff', 'boot'], inRig: ['cfloor'] });
  });

  it('nothing in the rig when it cannot run (HYPE_KVM_IN_QEMU=0, no QEMU): the benchmarks skip themselves', () => {
    for (const kvm of [true, false]) {
      expect(planBench(ALL_BENCHMARKS, { kvm, pvm: kvm, rig: false })).toEqual({ onHost: ALL_BENCHMARKS, inRig: [] });
    }
  });
});

describe('kvmIsPvm', () => {
  const loaded = (path: unknown) => path === '/sys/module/kvm_pvm';
  it('follows the kvm_pvm module unless HYPE_HOST_QUIRKS says otherwise', () => {
    expect(kvmIsPvm({}, loaded)).toBe(true);
    expect(kvmIsPvm({}, () => false)).toBe(false);
    expect(kvmIsPvm({ HYPE_HOST_QUIRKS: 'off' }, loaded)).toBe(false);
    expect(kvmIsPvm({ HYPE_HOST_QUIRKS: 'pvm' }, () => false)).toBe(true);
    expect(kvmIsPvm({ HYPE_HOST_QUIRKS: 'auto' }, loaded)).toBe(true);
  });
});
