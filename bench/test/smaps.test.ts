import { readFileSync } from 'node:fs';
import { addon } from '@hype/kvm-sys';
import { describe, expect, it } from 'vitest';
import { findGuestRam, parseSmaps, parseSmapsRollup, processRss, vmmMemory } from '../lib/smaps.mjs';

const MiB = 1024 * 1024;

/** One smaps entry in the kernel's format (fs/proc/task_mmu.c). */
function entry(start: bigint, size: number, perms: string, path: string, rssKiB: number, flags: string): string {
  const end = start + BigInt(size);
  const hex = (n: bigint) => n.toString(16).padStart(12, '0');
  const inode = path ? '260386' : '0';
  const dev = path ? 'fe:00' : '00:00';
  return [
    `${hex(start)}-${hex(end)} ${perms} 00000000 ${dev} ${inode}${path ? `                     ${path}` : ''}`,
    `Size:           ${size / 1024} kB`,
    'KernelPageSize:        4 kB',
    `Rss:            ${rssKiB} kB`,
    `Pss:            ${rssKiB} kB`,
    `Anonymous:      ${path ? 0 : rssKiB} kB`,
    'THPeligible:           0',
    `VmFlags: ${flags} `,
  ].join('\n');
}

const ROLLUP = [
  '556937d02000-7ffe03a88000 ---p 00000000 00:00 0                          [rollup]',
  'Rss:              300000 kB',
  'Pss:              280000 kB',
  'Anonymous:        250000 kB',
].join('\n');

describe('parseSmaps', () => {
  it('reads the header, the kB fields, plain numbers and VmFlags of each mapping', () => {
    const text = `${entry(0x556937d02000n, 8192, 'r--p', '/usr/bin/node', 8, 'rd mr mw me')}\n${entry(0x7f0000000000n, 256 * MiB, 'rw-p', '', 1024, 'rd wr mr mw me dc nr')}\n`;
    const [file, anon] = parseSmaps(text);
    expect(file).toMatchObject({ start: 0x556937d02000n, size: 8192, perms: 'r--p', path: '/usr/bin/node', vmFlags: ['rd', 'mr', 'mw', 'me'] });
    expect(file.fields).toEqual({ Size: 8, KernelPageSize: 4, Rss: 8, Pss: 8, Anonymous: 0, THPeligible: 0 });
    expect(anon).toMatchObject({ size: 256 * MiB, perms: 'rw-p', path: '', vmFlags: ['rd', 'wr', 'mr', 'mw', 'me', 'dc', 'nr'] });
    expect(anon.fields.Rss).toBe(1024);
  });
  it('keeps special names like [heap] as the path', () => {
    const [heap] = parseSmaps(entry(0x1000n, 4096, 'rw-p', '[heap]', 4, 'rd wr'));
    expect(heap.path).toBe('[heap]');
  });
  it('rejects a field before any mapping', () => {
    expect(() => parseSmaps('Rss: 4 kB\n')).toThrow(/before the first mapping/);
  });
  it('reads the totals of smaps_rollup', () => {
    expect(parseSmapsRollup(ROLLUP)).toEqual({ Rss: 300000, Pss: 280000, Anonymous: 250000 });
    expect(processRss(ROLLUP)).toBe(300000);
    expect(() => parseSmapsRollup('')).toThrow(/no Rss total/);
  });
});

describe('findGuestRam', () => {
  const node = entry(0x556937d02000n, 8192, 'r-xp', '/usr/bin/node', 8, 'rd ex mr mw me');
  const v8Reservation = entry(0x7e0000000000n, 256 * MiB, '---p', '', 0, 'mr mw me nr');
  const guest = entry(0x7f0000000000n, 256 * MiB, 'rw-p', '', 40960, 'rd wr mr mw me dc nr');
  const otherAnon = entry(0x7f1000000000n, 256 * MiB, 'rw-p', '', 100, 'rd wr mr mw me nr');

  it('finds the one anonymous read-write mapping of the guest RAM size (not a reservation, not a file)', () => {
    const { mapping, excessBytes } = findGuestRam(parseSmaps([node, v8Reservation, guest].join('\n')), 256 * MiB);
    expect(mapping.start).toBe(0x7f0000000000n);
    expect(excessBytes).toBe(0);
  });
  it("prefers kvm-sys's flags (dc, nr) when several mappings have that size", () => {
    const { mapping } = findGuestRam(parseSmaps([otherAnon, guest].join('\n')), 256 * MiB);
    expect(mapping.start).toBe(0x7f0000000000n);
  });
  it('refuses to guess between equally flagged mappings', () => {
    expect(() => findGuestRam(parseSmaps([guest, entry(0x7f2000000000n, 256 * MiB, 'rw-p', '', 8, 'rd wr mr mw me dc nr')].join('\n')), 256 * MiB)).toThrow(
      /2 anonymous mappings of 268435456 bytes, cannot tell which/,
    );
  });
  it('takes the smallest larger MAP_NORESERVE mapping when guest RAM was merged, with the excess', () => {
    const merged = entry(0x7f0000000000n, 256 * MiB + 2 * MiB, 'rw-p', '', 40960, 'rd wr mr mw me dc nr');
    const bigger = entry(0x7f4000000000n, 512 * MiB, 'rw-p', '', 10, 'rd wr mr mw me nr');
    const { mapping, excessBytes } = findGuestRam(parseSmaps([bigger, merged].join('\n')), 256 * MiB);
    expect(mapping.start).toBe(0x7f0000000000n);
    expect(excessBytes).toBe(2 * MiB);
  });
  it('names the large candidates when there is no guest RAM mapping', () => {
    expect(() => findGuestRam(parseSmaps([node, otherAnon].join('\n')), 512 * MiB)).toThrow(
      'guest RAM: no anonymous read-write mapping of 536870912 bytes (large ones: 7f1000000000 268435456 B nr)',
    );
  });
});

describe('vmmMemory', () => {
  it('subtracts the guest RAM mapping from the total', () => {
    const smaps = [entry(0x556937d02000n, 8192, 'r-xp', '/usr/bin/node', 8, 'rd ex'), entry(0x7f0000000000n, 256 * MiB, 'rw-p', '', 40960, 'rd wr mr mw me dc nr')].join('\n');
    expect(vmmMemory(ROLLUP, smaps, 256 * MiB)).toEqual({
      rssKiB: 300000,
      guestRamRssKiB: 40960,
      vmmRssKiB: 300000 - 40960,
      uncertaintyKiB: 0,
      guestRamMapping: { start: '0x7f0000000000', sizeBytes: 256 * MiB, vmFlags: 'rd wr mr mw me dc nr' },
    });
  });
  it('bounds the uncertainty of a merged mapping by its excess and its Rss', () => {
    const merged = entry(0x7f0000000000n, 256 * MiB + 2 * MiB, 'rw-p', '', 40960, 'rd wr mr mw me dc nr');
    expect(vmmMemory(ROLLUP, merged, 256 * MiB).uncertaintyKiB).toBe(2048);
    const mergedSmall = entry(0x7f0000000000n, 256 * MiB + 2 * MiB, 'rw-p', '', 1000, 'rd wr mr mw me dc nr');
    expect(vmmMemory(ROLLUP, mergedSmall, 256 * MiB).uncertaintyKiB).toBe(1000);
  });

  it('finds a real @hype/kvm-sys guest RAM mapping in this process and counts what was touched', () => {
    const size = 48 * MiB;
    const mapping = new (addon().Mapping)(size);
    try {
      new Uint8Array(mapping.buffer!).fill(1, 0, 4 * MiB);
      const result = vmmMemory(readFileSync('/proc/self/smaps_rollup', 'utf8'), readFileSync('/proc/self/smaps', 'utf8'), size);
      expect(result.guestRamMapping.sizeBytes).toBe(size);
      expect(result.guestRamMapping.vmFlags.split(' ')).toEqual(expect.arrayContaining(['dc', 'nr']));
      expect(result.guestRamRssKiB).toBeGreaterThanOrEqual(4096);
      expect(result.guestRamRssKiB).toBeLessThan(8192);
      expect(result.vmmRssKiB).toBe(result.rssKiB - result.guestRamRssKiB);
      expect(result.uncertaintyKiB).toBe(0);
    } finally {
      mapping.close();
    }
  });
});
