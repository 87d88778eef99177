import { GiB, LAYOUT, PAGE_SIZE } from './layout.js';
import { type GuestMemory, dataView, mustView } from './memory.js';

/** Page table entry bits. */
export const PTE_PRESENT = 1 << 0;
export const PTE_WRITE = 1 << 1;
/** In a page directory entry: this maps a 2 MiB page. */
export const PTE_LARGE = 1 << 7;

const TWO_MiB = 2 * 1024 * 1024;

/**
 * Identity-map [0, LAYOUT.identityMapGiB GiB) with 2 MiB pages: one PML4, one PDPT, one page directory per
 * GiB. Returns CR3.
 */
export function writeIdentityPageTables(mem: GuestMemory): number {
  const gib = LAYOUT.identityMapGiB;
  const pml4 = dataView(mustView(mem, LAYOUT.pml4, PAGE_SIZE, 'boot PML4').fill(0));
  const pdpt = dataView(mustView(mem, LAYOUT.pdpt, PAGE_SIZE, 'boot PDPT').fill(0));
  const pds = dataView(mustView(mem, LAYOUT.pageDirectories, gib * PAGE_SIZE, 'boot page directories'));
  pml4.setBigUint64(0, BigInt(LAYOUT.pdpt | PTE_PRESENT | PTE_WRITE), true);
  for (let g = 0; g < gib; g++) {
    pdpt.setBigUint64(g * 8, BigInt((LAYOUT.pageDirectories + g * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE), true);
  }
  for (let i = 0; i < gib * 512; i++) {
    pds.setBigUint64(i * 8, BigInt(i * TWO_MiB + (PTE_PRESENT | PTE_WRITE | PTE_LARGE)), true);
  }
  return LAYOUT.pml4;
}

/** Size covered by the identity map. */
export const identityMapBytes = (): number => LAYOUT.identityMapGiB * GiB;
