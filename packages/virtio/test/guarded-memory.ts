import type { GuestMemory } from '../src/memory.js';

/**
 * Guest RAM for property tests: the RAM sits between two guard areas of one ArrayBuffer, so a view
 * that escaped its range (e.g. a DataView built from `view.buffer` with a wrong offset) would change a
 * guard byte. Every `view` request is checked to be well-formed (integers, non-negative) and every
 * view handed out lies inside RAM.
 */
export class GuardedMemory implements GuestMemory {
  static readonly GUARD = 4096;
  static readonly FILL = 0xa5;
  readonly backing: Uint8Array;
  readonly ram: Uint8Array;
  readonly badRequests: string[] = [];
  requests = 0;

  constructor(size: number) {
    this.backing = new Uint8Array(size + 2 * GuardedMemory.GUARD).fill(GuardedMemory.FILL);
    this.ram = this.backing.subarray(GuardedMemory.GUARD, GuardedMemory.GUARD + size);
  }

  view(gpa: number, length: number): Uint8Array | undefined {
    this.requests++;
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0) {
      this.badRequests.push(`view(${gpa}, ${length})`);
      return undefined;
    }
    if (gpa + length > this.ram.length) return undefined;
    return this.ram.subarray(gpa, gpa + length);
  }

  /** Offsets (relative to RAM start) of guard bytes that changed; empty if none. */
  damagedGuards(): number[] {
    const out: number[] = [];
    const { GUARD, FILL } = GuardedMemory;
    for (let i = 0; i < GUARD; i++) if (this.backing[i] !== FILL) out.push(i - GUARD);
    for (let i = GUARD + this.ram.length; i < this.backing.length; i++) if (this.backing[i] !== FILL) out.push(i - GUARD);
    return out;
  }

  /** Fill RAM with a deterministic pseudo-random pattern (xorshift32). */
  fillRandom(seed: number): void {
    let x = seed | 0 || 0x9e3779b9;
    for (let i = 0; i < this.ram.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.ram[i] = x & 0xff;
    }
  }
}
