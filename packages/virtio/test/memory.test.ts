import * as shared from '@hype/guest-memory';
import { describe, expect, it } from 'vitest';
import * as virtio from '../src/index.js';
import {
  ArrayGuestMemory,
  GUEST_ADDRESS_LIMIT,
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
  it('re-exports the one GuestMemory vocabulary of @hype/guest-memory (tested there)', () => {
    expect(virtio.ArrayGuestMemory).toBe(shared.ArrayGuestMemory);
    expect(virtio.guestView).toBe(shared.guestView);
    expect(virtio.isGuestRange).toBe(shared.isGuestRange);
    expect(virtio.copyFromGuest).toBe(shared.copyFromGuest);
    expect(virtio.copyToGuest).toBe(shared.copyToGuest);
    expect(virtio.GUEST_ADDRESS_LIMIT).toBe(shared.GUEST_ADDRESS_LIMIT);
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

  it('joinAddress: u64 from two halves, -1 at or above GUEST_ADDRESS_LIMIT', () => {
    expect(joinAddress(0x1000, 0)).toBe(0x1000);
    expect(joinAddress(0xffff_ffff, 1)).toBe(2 ** 33 - 1);
    expect(joinAddress(0, 0x000f_ffff)).toBe(0x000f_ffff * 2 ** 32);
    expect(joinAddress(0, 0x0010_0000)).toBe(-1);
    expect(joinAddress(0, 0xffff_ffff)).toBe(-1);
    expect(joinAddress(0xffff_ffff, GUEST_ADDRESS_LIMIT / 2 ** 32 - 1)).toBe(GUEST_ADDRESS_LIMIT - 1);
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
