import { describe, expect, it } from 'vitest';
import { DEFAULT_VCPU_SPIN_NS, resolveVcpuSpin } from '../src/vcpu-spin.js';

describe('resolveVcpuSpin', () => {
  it('spins by default only where a CPU is left for the JS thread beside the vCPU threads', () => {
    expect(resolveVcpuSpin({}, {}, 2)).toBe(DEFAULT_VCPU_SPIN_NS);
    expect(resolveVcpuSpin({}, {}, 1)).toBe(0);
    expect(resolveVcpuSpin({ vcpus: 2 }, {}, 2)).toBe(0);
    expect(resolveVcpuSpin({ vcpus: 2 }, {}, 3)).toBe(DEFAULT_VCPU_SPIN_NS);
  });

  it('takes an explicit spinNs first, then HYPE_VCPU_SPIN_NS', () => {
    expect(resolveVcpuSpin({ spinNs: 0 }, { HYPE_VCPU_SPIN_NS: '5000' }, 8)).toBe(0);
    expect(resolveVcpuSpin({}, { HYPE_VCPU_SPIN_NS: '0' }, 8)).toBe(0);
    expect(resolveVcpuSpin({ vcpus: 4 }, { HYPE_VCPU_SPIN_NS: '50000' }, 2)).toBe(50_000);
    expect(resolveVcpuSpin({}, { HYPE_VCPU_SPIN_NS: '' }, 2)).toBe(DEFAULT_VCPU_SPIN_NS);
  });

  it('refuses what is not a whole number of ns up to 1 ms, naming where it came from', () => {
    for (const bad of ['-1', '1e3', '20us', '1000001', ' 5']) {
      expect(() => resolveVcpuSpin({}, { HYPE_VCPU_SPIN_NS: bad }, 2)).toThrow(`HYPE_VCPU_SPIN_NS=${bad}: give the vCPU spin in whole nanoseconds, 0 to 1000000`);
    }
    for (const bad of [-1, 0.5, NaN, 2_000_000]) expect(() => resolveVcpuSpin({ spinNs: bad }, {}, 2)).toThrow(`spinNs ${bad}`);
  });
});
