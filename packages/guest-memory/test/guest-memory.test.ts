import { describe, expect, it } from 'vitest';
import {
  ArrayGuestMemory,
  GUEST_ADDRESS_LIMIT,
  type GuestMemory,
  copyFromGuest,
  copyToGuest,
  guestView,
  isGuestRange,
} from '../src/index.js';

describe('guest memory helpers', () => {
  it('ArrayGuestMemory gives live views at a base address and nothing outside', () => {
    const bytes = new Uint8Array(0x100);
    const mem = new ArrayGuestMemory(bytes, 0x1000);
    const v = mem.view(0x1010, 4)!;
    v[0] = 7;
    expect(bytes[0x10]).toBe(7);
    expect(mem.view(0x1000, 0x100)?.length).toBe(0x100);
    expect(mem.view(0x1100, 0)?.length).toBe(0);
    expect(mem.view(0xfff, 1)).toBeUndefined();
    expect(mem.view(0x10ff, 2)).toBeUndefined();
    expect(mem.view(0x1100, 1)).toBeUndefined();
    expect(mem.view(-1, 1)).toBeUndefined();
    expect(mem.view(0x1000, -1)).toBeUndefined();
    expect(mem.view(Number.NaN, 1)).toBeUndefined();
    expect(mem.view(4096.5, 1)).toBeUndefined();
    expect(mem.view(2 ** 53, 1)).toBeUndefined();
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
    expect(guestView(new ArrayGuestMemory(new Uint8Array(8)), 4, 4)?.length).toBe(4);
  });

  it('isGuestRange: safe non-negative integers below GUEST_ADDRESS_LIMIT', () => {
    expect(isGuestRange(0, 0)).toBe(true);
    expect(isGuestRange(GUEST_ADDRESS_LIMIT - 1, 1)).toBe(true);
    expect(isGuestRange(GUEST_ADDRESS_LIMIT - 1, 2)).toBe(false);
    expect(isGuestRange(GUEST_ADDRESS_LIMIT, 0)).toBe(false);
    expect(isGuestRange(-1, 1)).toBe(false);
    expect(isGuestRange(0, -1)).toBe(false);
    expect(isGuestRange(0.5, 1)).toBe(false);
    expect(isGuestRange(0, Number.POSITIVE_INFINITY)).toBe(false);
  });
});
