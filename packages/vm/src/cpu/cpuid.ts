/**
 * CPUID policy: from the entries `KVM_GET_SUPPORTED_CPUID` reports to what one vCPU of an N-vCPU
 * guest sees (`KVM_SET_CPUID2`). Pure functions over entry arrays; inputs are never modified.
 * Anchored on Firecracker's `cpu_config/x86_64/cpuid/{normalize,intel/normalize,amd/normalize}.rs`.
 *
 * Topology: one package, one thread per core, vCPU i = core i with APIC ID i.
 */

/** = `struct kvm_cpuid_entry2` (without padding). Register values are unsigned 32-bit numbers. */
export type { CpuidEntry } from '@hype/kvm';
import type { CpuidEntry } from '@hype/kvm';

/** kvm_cpuid_entry2.flags: the entry applies only to its `index` (sub-leaf). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export const Leaf = {
  VENDOR: 0x0,
  FEATURES: 0x1,
  CACHE_PARAMS: 0x4,
  POWER: 0x6,
  EXT_FEATURES: 0x7,
  PMU: 0xa,
  TOPOLOGY: 0xb,
  TOPOLOGY_V2: 0x1f,
  KVM_SIGNATURE: 0x4000_0000,
  KVM_FEATURES: 0x4000_0001,
  EXT_FEATURES_AMD: 0x8000_0001,
  ADDR_SIZES_AMD: 0x8000_0008,
  CACHE_TOPOLOGY_AMD: 0x8000_001d,
  EXT_APIC_ID_AMD: 0x8000_001e,
} as const;

/** Bits of CPUID.1:ECX / EDX (Intel SDM vol. 2A, table 3-10/3-11). */
export const Cpuid1Ecx = {
  MONITOR: 3,
  VMX: 5,
  CX16: 13,
  PDCM: 15,
  X2APIC: 21,
  POPCNT: 23,
  TSC_DEADLINE: 24,
  XSAVE: 26,
  OSXSAVE: 27,
  HYPERVISOR: 31,
} as const;
export const Cpuid1Edx = { MTRR: 12, HTT: 28 } as const;

/** Bits of CPUID.0x40000001:EAX, KVM's paravirt features (linux/arch/x86/include/uapi/asm/kvm_para.h). */
export const KvmFeature = {
  CLOCKSOURCE: 0,
  NOP_IO_DELAY: 1,
  MMU_OP: 2,
  CLOCKSOURCE2: 3,
  ASYNC_PF: 4,
  STEAL_TIME: 5,
  PV_EOI: 6,
  PV_UNHALT: 7,
  PV_TLB_FLUSH: 9,
  ASYNC_PF_VMEXIT: 10,
  PV_SEND_IPI: 11,
  POLL_CONTROL: 12,
  PV_SCHED_YIELD: 13,
  ASYNC_PF_INT: 14,
  MSI_EXT_DEST_ID: 15,
  HC_MAP_GPA_RANGE: 16,
  MIGRATION_CONTROL: 17,
  CLOCKSOURCE_STABLE_BIT: 24,
} as const;

/** "KVMKVMKVM\0\0\0" as the EBX, ECX, EDX of leaf 0x40000000 (little-endian ASCII). */
export const KVM_SIGNATURE = { ebx: 0x4b4d_564b, ecx: 0x564b_4d56, edx: 0x0000_004d } as const;

export type CpuVendor = 'intel' | 'amd' | 'hygon' | 'unknown';

export interface CpuidPolicyOptions {
  /** 0-based index of this vCPU; also its APIC ID. */
  vcpuIndex: number;
  vcpuCount: number;
  /**
   * Advertise the LAPIC TSC-deadline timer (CPUID.1:ECX[24]). KVM emulates it with the in-kernel
   * LAPIC but `KVM_GET_SUPPORTED_CPUID` does not report it (Firecracker sets it too). Default true.
   */
  tscDeadline?: boolean;
}

/** APIC IDs are 8 bits in CPUID.1:EBX and in the MP table. */
export const MAX_VCPUS = 254;

const u32 = (n: number) => n >>> 0;

function setBit(value: number, bit: number, on: boolean): number {
  return u32(on ? value | (1 << bit) : value & ~(1 << bit));
}

/** Replaces bits [lo, hi] of `value` with `field` (which must fit). */
function setField(value: number, lo: number, hi: number, field: number): number {
  const width = hi - lo + 1;
  const mask = width === 32 ? 0xffff_ffff : ((1 << width) - 1) << lo;
  if (field < 0 || field > (width === 32 ? 0xffff_ffff : (1 << width) - 1)) {
    throw new RangeError(`CPUID field [${hi}:${lo}] cannot hold ${field}`);
  }
  return u32((value & ~mask) | (field << lo));
}

function getField(value: number, lo: number, hi: number): number {
  const width = hi - lo + 1;
  return width === 32 ? u32(value) : (value >>> lo) & ((1 << width) - 1);
}

/** Smallest b with 2^b >= n. */
export function bitsFor(n: number): number {
  let b = 0;
  while (1 << b < n) b++;
  return b;
}

export function findCpuid(entries: readonly CpuidEntry[], fn: number, index = 0): CpuidEntry | undefined {
  return entries.find((e) => e.function === fn && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) === 0 || e.index === index));
}

export function cpuVendor(entries: readonly CpuidEntry[]): CpuVendor {
  const leaf0 = findCpuid(entries, Leaf.VENDOR);
  if (!leaf0) return 'unknown';
  const bytes = new Uint8Array(12);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, leaf0.ebx, true);
  dv.setUint32(4, leaf0.edx, true);
  dv.setUint32(8, leaf0.ecx, true);
  const name = String.fromCharCode(...bytes);
  if (name === 'GenuineIntel') return 'intel';
  if (name === 'AuthenticAMD') return 'amd';
  if (name === 'HygonGenuine') return 'hygon';
  return 'unknown';
}

/**
 * The CPUID table for vCPU `vcpuIndex` of `vcpuCount`. Vendor, family/model and feature bits pass
 * through from KVM's supported set; these are changed:
 * - leaf 1: APIC ID (EBX[31:24]), addressable logical CPUs (EBX[23:16], power of 2) with HTT when
 *   N > 1, CLFLUSH line size 64 (EBX[15:8] = 8), hypervisor bit set, TSC-deadline set; cleared:
 *   MONITOR (KVM does not emulate mwait), VMX (no nested virtualization), PDCM (no PMU),
 *   OSXSAVE (KVM derives it from CR4 at run time);
 * - leaf 4 (Intel) / 0x8000001D (AMD): caches L1/L2 private, L3 shared by all N;
 *   leaf 4 EAX[31:26] = N - 1 cores per package;
 * - leaf 6 (Intel): no turbo, no energy-performance bias;
 * - leaf 7.0: WAITPKG cleared (Intel); FDP_EXCPTN_ONLY and FCS/FDS deprecation set (Intel);
 *   ARCH_CAPABILITIES cleared on AMD (not an AMD MSR);
 * - leaf 0xA: zeroed (no virtual PMU);
 * - leaf 0xB (and 0x1F when present): SMT level 1 thread, core level N cores, x2APIC ID in EDX;
 * - AMD 0x80000001: CmpLegacy when N > 1; 0x80000008 ECX: NC = N - 1, ApicIdSize = bits for N;
 *   0x8000001E: extended APIC ID = index, core ID = index, one node;
 * - 0x40000000: "KVMKVMKVM\0\0\0", max leaf >= 0x40000001; 0x40000001: KVM's paravirt features as
 *   reported (EAX), no hints (EDX = 0). Both are added if KVM did not list them.
 */
export function guestCpuid(supported: readonly CpuidEntry[], opts: CpuidPolicyOptions): CpuidEntry[] {
  const { vcpuIndex, vcpuCount } = opts;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MAX_VCPUS) {
    throw new RangeError(`CPUID policy: vcpuCount ${vcpuCount} must be an integer in 1-${MAX_VCPUS}`);
  }
  if (!Number.isInteger(vcpuIndex) || vcpuIndex < 0 || vcpuIndex >= vcpuCount) {
    throw new RangeError(`CPUID policy: vcpuIndex ${vcpuIndex} must be an integer in 0-${vcpuCount - 1}`);
  }
  const entries = supported.map((e) => ({ ...e }));
  const vendor = cpuVendor(entries);
  const intel = vendor === 'intel';
  const amdLike = vendor === 'amd' || vendor === 'hygon';
  const apicId = vcpuIndex;
  const coreBits = bitsFor(vcpuCount);

  const leaf1 = findCpuid(entries, Leaf.FEATURES);
  if (!leaf1) throw new Error('CPUID policy: KVM_GET_SUPPORTED_CPUID returned no leaf 0x1');
  leaf1.ebx = setField(leaf1.ebx, 8, 15, 8);
  leaf1.ebx = setField(leaf1.ebx, 16, 23, Math.min(1 << coreBits, 0xff));
  leaf1.ebx = setField(leaf1.ebx, 24, 31, apicId);
  leaf1.ecx = setBit(leaf1.ecx, Cpuid1Ecx.HYPERVISOR, true);
  leaf1.ecx = setBit(leaf1.ecx, Cpuid1Ecx.TSC_DEADLINE, opts.tscDeadline ?? true);
  leaf1.ecx = setBit(leaf1.ecx, Cpuid1Ecx.MONITOR, false);
  leaf1.ecx = setBit(leaf1.ecx, Cpuid1Ecx.VMX, false);
  leaf1.ecx = setBit(leaf1.ecx, Cpuid1Ecx.PDCM, false);
  leaf1.ecx = setBit(leaf1.ecx, Cpuid1Ecx.OSXSAVE, false);
  leaf1.edx = setBit(leaf1.edx, Cpuid1Edx.HTT, vcpuCount > 1);

  const cacheSharing = (e: CpuidEntry) => {
    const level = getField(e.eax, 5, 7);
    if (level === 1 || level === 2) e.eax = setField(e.eax, 14, 25, 0);
    else if (level === 3) e.eax = setField(e.eax, 14, 25, vcpuCount - 1);
  };
  if (intel) {
    for (const e of entries) {
      if (e.function !== Leaf.CACHE_PARAMS || getField(e.eax, 0, 4) === 0) continue; // type 0 = no more caches
      cacheSharing(e);
      e.eax = setField(e.eax, 26, 31, Math.min(vcpuCount - 1, 0x3f));
    }
    const leaf6 = findCpuid(entries, Leaf.POWER);
    if (leaf6) {
      leaf6.eax = setBit(leaf6.eax, 1, false); // turbo boost
      leaf6.ecx = setBit(leaf6.ecx, 3, false); // energy-performance bias MSR
    }
  }

  const leaf7 = findCpuid(entries, Leaf.EXT_FEATURES, 0);
  if (leaf7) {
    if (intel) {
      leaf7.ecx = setBit(leaf7.ecx, 5, false); // WAITPKG: umwait/tpause would idle the physical CPU
      leaf7.ebx = setBit(leaf7.ebx, 6, true); // FDP_EXCPTN_ONLY
      leaf7.ebx = setBit(leaf7.ebx, 13, true); // FPU CS/DS deprecated
    }
    if (amdLike) leaf7.edx = setBit(leaf7.edx, 29, false); // IA32_ARCH_CAPABILITIES does not exist on AMD
  }

  const leafA = findCpuid(entries, Leaf.PMU);
  if (leafA) leafA.eax = leafA.ebx = leafA.ecx = leafA.edx = 0;

  const topology = (from: CpuidEntry[], fn: number) => {
    const rest = from.filter((e) => e.function !== fn);
    const level = (index: number, shift: number, count: number, type: number): CpuidEntry => ({
      function: fn,
      index,
      flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
      eax: shift,
      ebx: count,
      ecx: u32((type << 8) | index),
      edx: apicId,
    });
    rest.push(level(0, 0, 1, 1), level(1, coreBits, vcpuCount, 2));
    return rest;
  };
  let out = entries;
  if (out.some((e) => e.function === Leaf.TOPOLOGY)) out = topology(out, Leaf.TOPOLOGY);
  if (out.some((e) => e.function === Leaf.TOPOLOGY_V2)) out = topology(out, Leaf.TOPOLOGY_V2);

  if (amdLike) {
    const ext1 = findCpuid(out, Leaf.EXT_FEATURES_AMD);
    if (ext1) ext1.ecx = setBit(ext1.ecx, 1, vcpuCount > 1); // CmpLegacy
    const sizes = findCpuid(out, Leaf.ADDR_SIZES_AMD);
    if (sizes) {
      sizes.ecx = setField(sizes.ecx, 0, 7, vcpuCount - 1);
      sizes.ecx = setField(sizes.ecx, 12, 15, coreBits);
    }
    for (const e of out) if (e.function === Leaf.CACHE_TOPOLOGY_AMD && getField(e.eax, 0, 4) !== 0) cacheSharing(e);
    const extApic = findCpuid(out, Leaf.EXT_APIC_ID_AMD);
    if (extApic) {
      extApic.eax = apicId;
      extApic.ebx = apicId & 0xff; // compute unit ID; threads per compute unit - 1 = 0
      extApic.ecx = 0; // node 0, one node per processor
    }
  }

  out = withKvmLeaves(out);
  return out;
}

function withKvmLeaves(entries: CpuidEntry[]): CpuidEntry[] {
  const out = entries;
  let sig = findCpuid(out, Leaf.KVM_SIGNATURE);
  if (!sig) {
    sig = { function: Leaf.KVM_SIGNATURE, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    out.push(sig);
  }
  sig.eax = Math.max(sig.eax, Leaf.KVM_FEATURES);
  sig.ebx = KVM_SIGNATURE.ebx;
  sig.ecx = KVM_SIGNATURE.ecx;
  sig.edx = KVM_SIGNATURE.edx;
  let features = findCpuid(out, Leaf.KVM_FEATURES);
  if (!features) {
    features = { function: Leaf.KVM_FEATURES, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    out.push(features);
  }
  features.edx = 0; // KVM_HINTS_REALTIME would promise dedicated physical CPUs
  return out;
}

/** Returns a copy of `entries` with one bit of leaf `fn`/`index` register `reg` cleared. */
export function clearCpuidBit(
  entries: readonly CpuidEntry[],
  fn: number,
  index: number,
  reg: 'eax' | 'ebx' | 'ecx' | 'edx',
  bit: number,
): CpuidEntry[] {
  return entries.map((e) => {
    const hit = e.function === fn && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) === 0 || e.index === index);
    return hit ? { ...e, [reg]: setBit(e[reg], bit, false) } : { ...e };
  });
}

/** Whether CPUID.1:EDX.MTRR is set (then the boot MSRs include MTRRdefType). */
export function hasMtrr(entries: readonly CpuidEntry[]): boolean {
  const leaf1 = findCpuid(entries, Leaf.FEATURES);
  return leaf1 !== undefined && ((leaf1.edx >>> Cpuid1Edx.MTRR) & 1) === 1;
}
