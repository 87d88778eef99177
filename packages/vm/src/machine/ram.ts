import type { MemoryRegion, Vm } from '@hype/kvm';
import { guestRamRegions } from '@hype/linux-loader';

/** Largest memslot we create: well under the 4 GiB external-ArrayBuffer limit of Node 20. */
const MAX_SLOT_BYTES = 2 ** 31;

/**
 * Guest RAM as the loader lays it out (below the PCI hole, then from 4 GiB), one memslot per piece of
 * at most 2 GiB. Returns the regions in address order.
 */
export function allocateGuestRam(vm: Vm, memBytes: number): MemoryRegion[] {
  const regions: MemoryRegion[] = [];
  for (const ram of guestRamRegions(memBytes)) {
    for (let offset = 0; offset < ram.size; offset += MAX_SLOT_BYTES) {
      const size = Math.min(MAX_SLOT_BYTES, ram.size - offset);
      regions.push(vm.addMemory({ guestPhysAddr: ram.gpa + offset, size }));
    }
  }
  return regions;
}
