import { describe, expect, it } from 'vitest';
import {
  ArrayGuestMemory,
  GUEST_ADDRESS_LIMIT,
  type GuestMemory,
  copyFromGuest,
  copyToGuest,
  guestView,
  isGuestRange,
  joinAddress,
  readU8,
  readU16,
  readU32,
  readU64,
  writeU8,
  writeU16,
  writeU32,
  writeU64,
} from '../src/memory.js';

describe('guest memory helpers', () => {
  it('ArrayGuestMemory gives live views at a base address and nothing outside', () => {
    const bytes = new Uint8Array(0x100);
    const mem = new ArrayGuestMemory(bytes, 0x1000);
    const v = mem.view(0x1010, 4)!;
    v[0] = 7;
    expect(bytes[0x10]).toBe(7);
    expect(mem.view(0x1000, 0x100)?.length).toBe(0x100);
    expect(mem.view(0xfff, 1)).toBeUndefined();
    expect(mem.view(0x10ff, 2)).toBeUndefined();
    expect(mem.view(0x1100, 1)).toBeUndefined();
    expect(mem.view(-1, 1)).toBeUndefined();
    expect(mem.view(0x1000, -1)).toBeUndefined();
    expect(mem.view(Number.NaN, 1)).toBeUndefined();
    expect(mem.view(4096.5, 1)).toBeUndefined();
  });

  it('little-endian reads and writes, bounds-checked', () => {
    const mem = new ArrayGuestMemory(new Uint8Array(16));
    expect(writeU64(mem, 0, 0x0102030405060708n)).toBe(true);
    expect(readU8(mem, 0)).toBe(0x08);
    expect(readU16(mem, 0)).toBe(0x0708);
    expect(readU32(mem, 4)).toBe(0x01020304);
    expect(readU64(mem, 0)).toBe(0x0102030405060708n);
    expect(writeU32(mem, 12, 0xdeadbeef)).toBe(true);
    expect(readU32(mem, 12)).toBe(0xdeadbeef);
    expect(writeU16(mem, 15, 1)).toBe(false);
    expect(writeU8(mem, 16, 1)).toBe(false);
    expect(writeU64(mem, 9, 1n)).toBe(false);
    expect(readU32(mem, 13)).toBeUndefined();
    expect(readU64(mem, 2 ** 60)).toBeUndefined();
    expect(writeU64(mem, 8, -1n)).toBe(true);
    expect(readU64(mem, 8)).toBe(0xffff_ffff_ffff_ffffn);
  });

  it('copies to and from guest all-or-nothing', () => {
    const mem = new ArrayGuestMemory(new Uint8Array(8));
    expect(copyToGuest(mem, 6, new Uint8Array([1, 2, 3]))).toBe(false);
    expect(mem.bytes.every((b) => b === 0)).toBe(true);
    expect(copyToGuest(mem, 5, new Uint8Array([1, 2, 3]))).toBe(true);
    const out = new Uint8Array(4).fill(9);
    expect(copyFromGuest(mem, 5, out)).toBe(false);
    expect([...out]).toEqual([9, 9, 9, 9]);
    expect(copyFromGuest(mem, 4, out)).toBe(true);
    expect([...out]).toEqual([0, 1, 2, 3]);
  });

  it('guestView never asks for malformed ranges and rejects a memory that returns the wrong length', () => {
    const asked: Array<[number, number]> = [];
    const sloppy: GuestMemory = {
      view(gpa, length) {
        asked.push([gpa, length]);
        return new Uint8Array(length + 1);
      },
    };
    expect(guestView(sloppy, 0, 4)).toBeUndefined();
    expect(guestView(sloppy, -4, 4)).toBeUndefined();
    expect(guestView(sloppy, GUEST_ADDRESS_LIMIT - 2, 4)).toBeUndefined();
    expect(guestView(sloppy, 2 ** 53, 1)).toBeUndefined();
    expect(asked).toEqual([[0, 4]]);
  });

  it('isGuestRange and joinAddress', () => {
    expect(isGuestRange(0, 0)).toBe(true);
    expect(isGuestRange(GUEST_ADDRESS_LIMIT - 1, 1)).toBe(true);
    expect(isGuestRange(GUEST_ADDRESS_LIMIT - 1, 2)).toBe(false);
    expect(joinAddress(0x1000, 0)).toBe(0x1000);
    expect(joinAddress(0xffff_ffff, 1)).toBe(2 ** 33 - 1);
    expect(joinAddress(0, 0x000f_ffff)).toBe(0x000f_ffff * 2 ** 32);
    expect(joinAddress(0, 0x0010_0000)).toBe(-1);
    expect(joinAddress(0, 0xffff_ffff)).toBe(-1);
  });
});

describe('rateLimitedLogger', () => {
  it('passes a burst, then one in every N with the suppressed count', async () => {
    const { rateLimitedLogger } = await import('../src/log.js');
    const out: string[] = [];
    const log = rateLimitedLogger({ warn: (m) => out.push(m) }, 3, 10);
    for (let i = 1; i <= 25; i++) log.warn(`w${i}`);
    expect(out).toEqual(['w1', 'w2', 'w3', 'w10 (6 similar warnings suppressed)', 'w20 (9 similar warnings suppressed)']);
  });
});
