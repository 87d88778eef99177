import { availableParallelism } from 'node:os';

/**
 * How long a vCPU thread busy-waits for the JS thread to complete an exit before it sleeps on a condition
 * variable (StartOptions.spinNs). Handing an exit to JS wakes the JS thread; completing it wakes the vCPU
 * thread again. Where the vCPU thread still spins when JS completes the exit, the second wake-up (a futex
 * wake, and on an idle CPU an inter-processor interrupt, which a virtualised host forwards through its
 * hypervisor) is not needed. Measured with bench/handoff.mjs on a 2-core kvm_pvm host (2026-12-07), with
 * the other core idle: exit round trip 52 µs sleeping at once, 17.5 µs spinning 20 µs (the synchronous C
 * loop: 6.9 µs); with one or two busy loops beside it, 20.5 / 21.0 µs and 20.9 / 21.2 µs (no worse within
 * noise); in the nested rig (QEMU/TCG, where the hand-over takes ~380 µs) no change either way. KVM itself
 * polls a halted vCPU for up to 200 µs (halt_poll_ns) for the same reason.
 */
export const DEFAULT_VCPU_SPIN_NS = 20_000;
const MAX_VCPU_SPIN_NS = 1_000_000;

/**
 * The spin of a run: `spinNs` if given; else the environment variable HYPE_VCPU_SPIN_NS (ns, 0 to 1 ms;
 * anything else is refused); else DEFAULT_VCPU_SPIN_NS when the host has a CPU for the JS thread beside the
 * `vcpus` vCPU threads of the VM, and 0 otherwise (spinning vCPU threads would then keep the JS thread from
 * the CPU it needs to complete their exits).
 */
export function resolveVcpuSpin(
  options: { spinNs?: number; vcpus?: number } = {},
  env: Record<string, string | undefined> = process.env,
  cpus: number = availableParallelism(),
): number {
  const refuse = (what: string) => new RangeError(`${what}: give the vCPU spin in whole nanoseconds, 0 to ${MAX_VCPU_SPIN_NS}`);
  if (options.spinNs !== undefined) {
    const ns = options.spinNs;
    if (!Number.isInteger(ns) || ns < 0 || ns > MAX_VCPU_SPIN_NS) throw refuse(`vCPU spin: spinNs ${ns}`);
    return ns;
  }
  const fromEnv = env.HYPE_VCPU_SPIN_NS;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d{1,7}$/.test(fromEnv) || Number(fromEnv) > MAX_VCPU_SPIN_NS) throw refuse(`HYPE_VCPU_SPIN_NS=${fromEnv}`);
    return Number(fromEnv);
  }
  return cpus > (options.vcpus ?? 1) ? DEFAULT_VCPU_SPIN_NS : 0;
}
