// Where each benchmark of `pnpm bench` runs: on this host, or under nested KVM (scripts/kvm-in-qemu.sh).

/** Every benchmark, in report order (bench/run.mjs runs bench/<name>.mjs). */
export const ALL_BENCHMARKS = ['handoff', 'blk', 'hostile', 'boot', 'memory', 'ddread', 'exec', 'cfloor', 'net'];
/** The benchmarks that need /dev/kvm. */
export const KVM_BENCHMARKS = ['handoff', 'boot', 'memory', 'ddread', 'exec', 'cfloor', 'net'];
/** The ones that need ordinary KVM: the C floor has no host-quirk layer for kvm_pvm (bench/cfloor.mjs). */
export const ORDINARY_KVM_BENCHMARKS = ['cfloor'];

/**
 * Splits `selected` between the host and the nested rig. `host.kvm`: /dev/kvm exists; `host.pvm`: it is
 * kvm_pvm's (the host-quirk layer would be on); `host.rig`: the rig can run (QEMU installed and not
 * turned off). Without the rig everything runs here, and what cannot skips itself, saying why.
 */
export function planBench(selected, host) {
  const needsRig = (b) => host.rig && (host.kvm ? host.pvm && ORDINARY_KVM_BENCHMARKS.includes(b) : KVM_BENCHMARKS.includes(b));
  return { onHost: selected.filter((b) => !needsRig(b)), inRig: selected.filter(needsRig) };
}
