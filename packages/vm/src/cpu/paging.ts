import type { GuestMemory } from '@hype/guest-memory';
import { CR0_PG, CR4_LA57, CR4_PAE, CR4_PSE, EFER_LMA, type PagingRegs } from './state.js';

export type { GuestMemory };

const PAGE_SIZE = 4096;
const PTE_PRESENT = 1n;
const PTE_PS = 1n << 7n;
/** Physical-address bits 51:12 of a 64-bit paging entry. */
const ADDR_MASK_4K = 0x000f_ffff_ffff_f000n;

export interface Translation {
  gpa: number;
  /** Size of the page the address lies in: 4 KiB, 2 MiB, 4 MiB or 1 GiB. */
  pageSize: number;
}

function readEntry64(mem: GuestMemory, gpa: bigint): bigint | undefined {
  if (gpa > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const v = mem.view(Number(gpa), 8);
  if (!v) return undefined;
  return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
}

function readEntry32(mem: GuestMemory, gpa: bigint): bigint | undefined {
  const v = mem.view(Number(gpa), 4);
  if (!v) return undefined;
  return BigInt(new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true));
}

function result(gpa: bigint, pageSize: number): Translation | undefined {
  return gpa <= BigInt(Number.MAX_SAFE_INTEGER) ? { gpa: Number(gpa), pageSize } : undefined;
}

/**
 * Translates a linear (segment-base-applied) address to guest-physical by walking the guest's page
 * tables in guest RAM, in whichever paging mode the control registers select: none, 32-bit (with
 * 4 MiB PSE pages), PAE, 4-level or 5-level long mode (2 MiB / 1 GiB pages). Access rights are not
 * checked: this is the VMM looking, not the guest. Returns undefined for a non-present entry, a
 * non-canonical address, or a table outside guest RAM; at most 5 memory reads, never a loop.
 */
export function translate(mem: GuestMemory, regs: PagingRegs, linear: bigint): Translation | undefined {
  if ((regs.cr0 & CR0_PG) === 0n) return result(linear & 0xffff_ffffn, PAGE_SIZE);
  if ((regs.cr4 & CR4_PAE) === 0n) return translate32(mem, regs, linear & 0xffff_ffffn);
  if ((regs.efer & EFER_LMA) === 0n) return translatePae(mem, regs, linear & 0xffff_ffffn);
  return translateLong(mem, regs, linear);
}

function translate32(mem: GuestMemory, regs: PagingRegs, lin: bigint): Translation | undefined {
  const pde = readEntry32(mem, (regs.cr3 & 0xffff_f000n) + ((lin >> 22n) & 0x3ffn) * 4n);
  if (pde === undefined || (pde & PTE_PRESENT) === 0n) return undefined;
  if ((pde & PTE_PS) !== 0n && (regs.cr4 & CR4_PSE) !== 0n) {
    // 4 MiB page; PSE-36 puts physical bits 39:32 in PDE bits 20:13.
    const base = (pde & 0xffc0_0000n) | (((pde >> 13n) & 0xffn) << 32n);
    return result(base + (lin & 0x3f_ffffn), 4 << 20);
  }
  const pte = readEntry32(mem, (pde & 0xffff_f000n) + ((lin >> 12n) & 0x3ffn) * 4n);
  if (pte === undefined || (pte & PTE_PRESENT) === 0n) return undefined;
  return result((pte & 0xffff_f000n) + (lin & 0xfffn), PAGE_SIZE);
}

function translatePae(mem: GuestMemory, regs: PagingRegs, lin: bigint): Translation | undefined {
  const pdpte = readEntry64(mem, (regs.cr3 & 0xffff_ffe0n) + ((lin >> 30n) & 3n) * 8n);
  if (pdpte === undefined || (pdpte & PTE_PRESENT) === 0n) return undefined;
  return walkFromPd(mem, pdpte & ADDR_MASK_4K, lin);
}

function walkFromPd(mem: GuestMemory, pdBase: bigint, lin: bigint): Translation | undefined {
  const pde = readEntry64(mem, pdBase + ((lin >> 21n) & 0x1ffn) * 8n);
  if (pde === undefined || (pde & PTE_PRESENT) === 0n) return undefined;
  if ((pde & PTE_PS) !== 0n) return result((pde & 0x000f_ffff_ffe0_0000n) + (lin & 0x1f_ffffn), 2 << 20);
  const pte = readEntry64(mem, (pde & ADDR_MASK_4K) + ((lin >> 12n) & 0x1ffn) * 8n);
  if (pte === undefined || (pte & PTE_PRESENT) === 0n) return undefined;
  return result((pte & ADDR_MASK_4K) + (lin & 0xfffn), PAGE_SIZE);
}

function translateLong(mem: GuestMemory, regs: PagingRegs, lin: bigint): Translation | undefined {
  const la57 = (regs.cr4 & CR4_LA57) !== 0n;
  const vaBits = la57 ? 57n : 48n;
  // Canonical: bits 63..vaBits-1 all equal.
  const top = lin >> (vaBits - 1n);
  if (top !== 0n && top !== (1n << (65n - vaBits)) - 1n) return undefined;
  let table = regs.cr3 & ADDR_MASK_4K;
  if (la57) {
    const pml5e = readEntry64(mem, table + ((lin >> 48n) & 0x1ffn) * 8n);
    if (pml5e === undefined || (pml5e & PTE_PRESENT) === 0n) return undefined;
    table = pml5e & ADDR_MASK_4K;
  }
  const pml4e = readEntry64(mem, table + ((lin >> 39n) & 0x1ffn) * 8n);
  if (pml4e === undefined || (pml4e & PTE_PRESENT) === 0n) return undefined;
  const pdpte = readEntry64(mem, (pml4e & ADDR_MASK_4K) + ((lin >> 30n) & 0x1ffn) * 8n);
  if (pdpte === undefined || (pdpte & PTE_PRESENT) === 0n) return undefined;
  if ((pdpte & PTE_PS) !== 0n) return result((pdpte & 0x000f_ffff_c000_0000n) + (lin & 0x3fff_ffffn), 1 << 30);
  return walkFromPd(mem, pdpte & ADDR_MASK_4K, lin);
}

/** Largest read/write through page tables, so a bad length cannot make us walk forever. */
export const MAX_VIRTUAL_ACCESS = 64 * 1024;

/**
 * Copies `length` bytes at linear address `linear`, page by page. Returns the bytes read before the
 * first untranslatable page (all of them if every page translates).
 */
export function readLinear(mem: GuestMemory, regs: PagingRegs, linear: bigint, length: number): Uint8Array {
  const out = new Uint8Array(Math.min(Math.max(length, 0), MAX_VIRTUAL_ACCESS));
  let done = 0;
  while (done < out.length) {
    const addr = linear + BigInt(done);
    const t = translate(mem, regs, addr);
    if (!t) break;
    const inPage = PAGE_SIZE - (t.gpa % PAGE_SIZE);
    const n = Math.min(inPage, out.length - done);
    const v = mem.view(t.gpa, n);
    if (!v) break;
    out.set(v, done);
    done += n;
  }
  return out.subarray(0, done);
}

/** Reads a little-endian u64 at a linear address; undefined if any of its bytes is unmapped. */
export function readLinearU64(mem: GuestMemory, regs: PagingRegs, linear: bigint): bigint | undefined {
  const b = readLinear(mem, regs, linear, 8);
  if (b.length !== 8) return undefined;
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}
