import { describe, expect, it } from 'vitest';
import { LAYOUT, MP_MAX_CPUS, LoaderError, flatMemory, mpTableSize, parseMpTable, writeMpTable } from '@hype/linux-loader';

const MiB = 1 << 20;

describe('MP table (Intel MP spec 1.4)', () => {
  it('has the mpspec_def.h structure sizes', () => {
    // mpf_intel 16, mpc_table 44, mpc_cpu 20, mpc_bus/ioapic/intsrc/lintsrc 8 each; 24 IRQs and 2 local entries.
    expect(mpTableSize(1)).toBe(16 + 44 + 20 + 8 + 8 + 24 * 8 + 2 * 8);
    expect(mpTableSize(4) - mpTableSize(3)).toBe(20);
  });

  for (const cpus of [1, 2, 4, 8, 37, MP_MAX_CPUS]) {
    it(`parses back what it wrote for ${cpus} vCPU(s), checksums included`, () => {
      const ram = new Uint8Array(MiB).fill(0xaa);
      const mem = flatMemory(ram);
      const { start, end } = writeMpTable(mem, cpus);
      expect(start).toBe(0x9fc00);
      expect(end).toBe(0x9fc00 + mpTableSize(cpus));
      expect(end).toBeLessThanOrEqual(LAYOUT.highMemStart);
      expect(ram[end]).toBe(0xaa); // nothing written past the end
      expect(ram[start - 1]).toBe(0xaa);

      const t = parseMpTable(mem);
      expect(t.floatingChecksumOk).toBe(true);
      expect(t.tableChecksumOk).toBe(true);
      expect(t.tableAddr).toBe(0x9fc00 + 16);
      expect(t.spec).toBe(4);
      expect(t.lapicAddr).toBe(0xfee00000);
      expect(t.entryCount).toBe(cpus + 1 + 1 + 24 + 2);
      expect(t.cpus.map((c) => c.apicId)).toEqual(Array.from({ length: cpus }, (_, i) => i));
      expect(t.cpus.every((c) => c.enabled && c.apicVersion === 0x14 && c.featureFlags === 0x201)).toBe(true);
      expect(t.cpus.filter((c) => c.bootProcessor).map((c) => c.apicId)).toEqual([0]);
      expect(t.buses).toEqual([{ id: 0, type: 'ISA' }]);
      expect(t.ioapics).toEqual([{ id: cpus, version: 0x14, usable: true, addr: 0xfec00000 }]);
      expect(t.interrupts).toHaveLength(24);
      t.interrupts.forEach((e, irq) => {
        expect(e).toEqual({ irqType: 0, flags: 0, srcBus: 0, srcBusIrq: irq, dstApic: cpus, dstIrq: irq });
      });
      expect(t.localInterrupts).toEqual([
        { irqType: 3, flags: 0, srcBus: 0, srcBusIrq: 0, dstApic: 0, dstLint: 0 },
        { irqType: 1, flags: 0, srcBus: 0, srcBusIrq: 0, dstApic: 0xff, dstLint: 1 },
      ]);
    });
  }

  it('writes the floating pointer where Linux scans: the last KiB of base memory, 16-byte aligned', () => {
    const ram = new Uint8Array(MiB);
    writeMpTable(flatMemory(ram), 2);
    expect(String.fromCharCode(...ram.subarray(0x9fc00, 0x9fc04))).toBe('_MP_');
    expect(0x9fc00 % 16).toBe(0);
    expect(ram[0x9fc00 + 8]).toBe(1); // length in paragraphs
    expect(String.fromCharCode(...ram.subarray(0x9fc10, 0x9fc14))).toBe('PCMP');
  });

  it('detects a corrupted table through its checksum', () => {
    const ram = new Uint8Array(MiB);
    writeMpTable(flatMemory(ram), 2);
    ram[0x9fc00 + 16 + 44 + 1] ^= 1; // first CPU's APIC ID
    expect(parseMpTable(flatMemory(ram)).tableChecksumOk).toBe(false);
  });

  it('refuses 0 or too many vCPUs, and memory that does not hold the table', () => {
    const mem = flatMemory(new Uint8Array(MiB));
    expect(() => writeMpTable(mem, 0)).toThrow(LoaderError);
    expect(() => writeMpTable(mem, MP_MAX_CPUS + 1)).toThrow(/1 to 254/);
    expect(() => writeMpTable(flatMemory(new Uint8Array(0x9fc00 + 100)), 1)).toThrow(/MP table .* outside guest RAM/);
  });
});
